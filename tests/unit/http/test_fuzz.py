"""Fuzzed requests: whatever arrives, in whatever pieces, nothing raises and every answer is whole.

Each example is fed to a fresh nsqd HTTP connection in random pieces, then the
peer closes its side.  By then the connection must be closed, and what was
written must read as a sequence of complete HTTP/1.1 answers: one per request
for well-formed input, and for garbage at most one raw 400-class answer.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.http.helpers import Answer, Incomplete, Node, chunked, read_answer

METHODS = ["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH"]
PATHS = [
    "/ping", "/info", "/stats", "/pub", "/mpub", "/topic/create", "/topic/delete", "/topic/empty", "/topic/pause",
    "/topic/unpause", "/channel/create", "/channel/delete", "/channel/empty", "/channel/pause", "/channel/unpause",
    "/config/log_level", "/config/nsqlookupd_tcp_addresses", "/config/mem_queue_size", "/debug/freememory",
    "/debug/setblockrate", "/", "/PING/", "/config/", "*", "/a/../stats",
]  # fmt: skip
KEYS = ["topic", "channel", "defer", "binary", "format", "include_clients", "include_mem", "rate", "x"]
URL_PIECES = [*"abcT_-.#%;+=&?/01 9", "%20", "%zz", "%e2%82%ac", "#ephemeral", "\u00e9"]
URL_TEXT = st.lists(st.sampled_from(URL_PIECES), max_size=8).map("".join)


@st.composite
def requests(draw: st.DrawFn, clean: bool = False) -> bytes:
    method = draw(st.sampled_from(METHODS) | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8))
    path = draw(st.sampled_from(PATHS) | URL_TEXT.map(lambda s: "/" + s.replace(" ", "")))
    pairs = draw(st.lists(st.tuples(st.sampled_from(KEYS), URL_TEXT.map(lambda s: s.replace(" ", "+"))), max_size=4))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    target = path + ("?" + query if query else "")
    body = draw(st.binary(max_size=300) | st.sampled_from([b"a\nb\n", b"\x00\x00\x00\x01\x00\x00\x00\x01x", b'["h:1"]', b"debug"]))
    framing = draw(st.sampled_from(["length", "chunked", "none"] if clean else ["length", "chunked", "none", "expect"]))
    headers = [f"{method} {target} HTTP/1.1", "Host: nsqd"]
    if not clean:
        headers += draw(st.lists(st.sampled_from(["Connection: close", "Accept: */*", "X-Junk: \x7f", "Content-Type: text/plain"]), max_size=2))
    if framing == "chunked":
        headers.append("Transfer-Encoding: chunked")
        payload = chunked(*[body[i : i + 50] for i in range(0, len(body), 50)])
    elif framing == "none":
        payload = b""
    else:
        headers.append(f"Content-Length: {len(body)}")
        if framing == "expect":
            headers.append("Expect: 100-continue")
        payload = body
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + payload


def is_head(request: bytes) -> bool:
    return request.startswith(b"HEAD ")


def feed(data: bytes, cuts: list[int], heads: list[bool] | None = None) -> tuple[Node, list[Answer], bool]:
    node = Node(opts={"max_msg_size": 64, "max_body_size": 256, "mem_queue_size": 20})
    client = node.http()
    prev = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if not client.closed:
            client.send(data[prev:cut])
        prev = cut
    if not client.closed:
        client.conn.handler.eof_received()
    assert client.closed
    written = bytes(client.conn.written)
    answers: list[Answer] = []
    pos = 0
    while pos < len(written):
        head = bool(heads) and len(answers) < len(heads or []) and (heads or [])[len(answers)]
        try:
            answer, pos = read_answer(written, pos, head, closed=True)
        except Incomplete:
            raise AssertionError(f"incomplete answer in {written[pos:]!r}") from None
        if answer.status != 100:
            answers.append(answer)
    # The node is still whole: a new connection gets its stats.
    assert node.request("GET", "/stats?format=json").status == 200
    return node, answers, client.closed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(min_value=0), max_size=6))
def test_fuzzed_requests(reqs: list[bytes], cuts: list[int]) -> None:
    _, answers, _ = feed(b"".join(reqs), cuts, [is_head(r) for r in reqs])
    assert 1 <= len(answers) <= len(reqs)
    for answer in answers:
        assert 200 <= answer.status < 600


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(clean=True), min_size=1, max_size=4), st.lists(st.integers(min_value=0), max_size=6))
def test_well_formed_pipelines_get_one_answer_each(reqs: list[bytes], cuts: list[int]) -> None:
    _, answers, _ = feed(b"".join(reqs), cuts, [is_head(r) for r in reqs])
    # A target h11 or Go cannot parse is answered 400 and ends the connection.
    bad_target = [a for a in answers if a.status == 400 and a.header("Connection") == "close"]
    assert len(answers) == len(reqs) or bad_target, answers


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=6))
def test_fuzzed_garbage(data: bytes, cuts: list[int]) -> None:
    _, answers, _ = feed(data, cuts)
    for answer in answers:
        assert 200 <= answer.status < 600


@settings(max_examples=200, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=3), st.binary(min_size=1, max_size=60))
def test_fuzzed_requests_then_garbage(reqs: list[bytes], junk: bytes) -> None:
    feed(b"".join(reqs) + junk, [], [is_head(r) for r in reqs])
