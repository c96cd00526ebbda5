"""nsqd's HTTP API through fake ports: every endpoint, its answers and its errors."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import pytest

from broker.nsqd.channel import Channel
from broker.nsqd.options import FLAGS, FlagSpec
from broker.nsqd.topic import Topic
from broker.version import PACKAGE_VERSION
from broker.wire import v2
from tests.unit.http.helpers import Answer, Node, assert_shape, chunked, encode_request, reference

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"


def error(answer: Answer, status: int, message: str) -> None:
    assert (answer.status, answer.message) == (status, message), answer
    assert answer.header("X-Nsq-Content-Type") == "nsq; version=1.0"


def ok_empty(answer: Answer) -> None:
    assert (answer.status, answer.body) == (200, b""), answer
    assert answer.header("Content-Type") is None
    assert answer.header("X-Nsq-Content-Type") == "nsq; version=1.0"
    assert answer.header("Content-Length") == "0"


def ok_text(answer: Answer, text: bytes = b"OK") -> None:
    assert (answer.status, answer.body) == (200, text), answer
    assert answer.header("Content-Type") == TEXT


def paused(thing: Topic | Channel) -> bool:
    return thing.paused  # read through a call, so the checker does not narrow it between asserts


def binary_mpub(*bodies: bytes, count: int | None = None) -> bytes:
    out = struct.pack(">i", len(bodies) if count is None else count)
    for body in bodies:
        out += struct.pack(">i", len(body)) + body
    return out


# -- /ping and /info -------------------------------------------------------------------


def test_ping() -> None:
    node = Node()
    answer = node.request("GET", "/ping")
    ok_text(answer)
    assert answer.header("X-Nsq-Content-Type") == "nsq; version=1.0"
    assert ("INFO", "200 GET /ping (127.0.0.1:50001) 0s") in node.logger.lines


def test_ping_when_unhealthy_is_500_with_the_health_text() -> None:
    node = Node()
    node.nsqd.health = "NOK - failed to write to disk"
    answer = node.request("GET", "/ping")
    assert (answer.status, answer.body, answer.header("Content-Type")) == (500, b"NOK - failed to write to disk", TEXT)


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE"])
def test_ping_other_methods_are_405(method: str) -> None:
    answer = Node().http().request(method, "/ping")
    assert answer.status == 405
    assert answer.header("Allow") == "GET, OPTIONS"
    if method != "HEAD":
        assert answer.message == "METHOD_NOT_ALLOWED"
    else:
        assert answer.body == b"" and answer.header("Content-Length") == str(len(b'{"message":"METHOD_NOT_ALLOWED"}'))


def test_info() -> None:
    node = Node(opts={"broadcast_address": "nsq.example", "max_heartbeat_interval": 30.0})
    assert node.request("GET", "/info").json() == {
        "version": "1.3.0",
        "broadcast_address": "nsq.example",
        "hostname": "testhost",
        "http_port": 4151,
        "tcp_port": 4150,
        "start_time": 1795835051,
        "max_heartbeat_interval": 30_000_000_000,
        "max_output_buffer_size": 65536,
        "max_output_buffer_timeout": 30_000_000_000,
        "max_deflate_level": 6,
        "nsqsim_version": PACKAGE_VERSION,
    }
    assert Node().request("GET", "/info").json()["broadcast_address"] == "testhost"


def test_info_has_nsqd_shape() -> None:
    assert_shape(reference("nsqd-1.3.0-info.json"), Node().request("GET", "/info").json())


# -- /pub ------------------------------------------------------------------------------


def test_pub_puts_one_message() -> None:
    node = Node()
    ok_text(node.request("POST", "/pub?topic=t", b"hello"))
    topic = node.nsqd.topics["t"]
    assert (topic.depth(), topic.message_count, topic.message_bytes) == (1, 1, 5)
    assert [m.body for m in topic.memory] == [b"hello"]
    assert not [line for line in node.logger.lines if "/pub" in line[1]]  # nsqd does not log /pub


def test_pub_then_consume_over_tcp() -> None:
    node = Node()
    consumer = node.tcp()
    consumer.send(b"SUB t c\nRDY 5\n")
    consumer.frames()
    ok_text(node.request("POST", "/pub?topic=t", b"over http"))
    node.clock.advance(1.0)  # past the consumer's output buffer timeout
    [(kind, data)] = consumer.frames()
    assert kind == v2.FRAME_MESSAGE
    _, attempts, _, body = v2.decode_message(data)
    assert (attempts, body) == (1, b"over http")


@pytest.mark.parametrize(
    ("target", "body", "status", "message"),
    [
        ("/pub", b"x", 400, "MISSING_ARG_TOPIC"),
        ("/pub?topic=", b"x", 400, "INVALID_TOPIC"),
        ("/pub?topic=bad!", b"x", 400, "INVALID_TOPIC"),
        ("/pub?topic=" + "a" * 65, b"x", 400, "INVALID_TOPIC"),
        ("/pub?topic=t&x=%zz", b"x", 400, "INVALID_REQUEST"),
        ("/pub?topic=t;x", b"x", 400, "INVALID_REQUEST"),
        ("/pub?topic=t", b"", 400, "MSG_EMPTY"),
        ("/pub?topic=t&defer=abc", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&defer=-1", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&defer=3600001", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&defer=1.5", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&defer=99999999999999999999", b"x", 400, "INVALID_DEFER"),
        ("/pub?topic=t&defer=9223372036855", b"x", 400, "INVALID_DEFER"),  # wraps negative
    ],
)
def test_pub_errors(target: str, body: bytes, status: int, message: str) -> None:
    error(Node().request("POST", target, body), status, message)


def test_pub_body_checks_come_before_the_topic_is_made() -> None:
    node = Node(opts={"max_msg_size": 10})
    error(node.request("POST", "/pub?topic=t", b""), 400, "MSG_EMPTY")
    error(node.request("POST", "/pub?topic=t", b"x" * 11), 413, "MSG_TOO_BIG")
    assert node.nsqd.topics == {}
    error(node.request("POST", "/pub?topic=t&defer=x", b"x"), 400, "INVALID_DEFER")
    assert "t" in node.nsqd.topics  # as in nsqd: the topic is made before defer is read


def test_pub_size_limit() -> None:
    node = Node(opts={"max_msg_size": 10})
    ok_text(node.request("POST", "/pub?topic=t", b"x" * 10))
    error(node.request("POST", "/pub?topic=t", b"x" * 11), 413, "MSG_TOO_BIG")
    client = node.http()
    client.send(b"POST /pub?topic=t HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 6, b"y" * 6))
    [answer] = client.answers()
    error(answer, 413, "MSG_TOO_BIG")
    # The connection lives on after a small oversize body.
    ok_text(client.request("POST", "/pub?topic=t", b"again"))
    assert [m.body for m in node.nsqd.topics["t"].memory] == [b"x" * 10, b"again"]


def test_pub_huge_body_is_refused_without_reading_it() -> None:
    node = Node()
    client = node.http()
    client.send(encode_request("POST", "/pub?topic=t", headers={"Content-Length": str(1 << 30)}))
    [answer] = client.answers()
    error(answer, 413, "MSG_TOO_BIG")
    assert answer.header("Connection") == "close"
    assert client.closed


@pytest.mark.parametrize(("defer", "delay"), [("0", 0.0), ("1500", 1.5), ("3600000", 3600.0), ("18446744073710", 448384e-9)])
def test_pub_defer(defer: str, delay: float) -> None:
    node = Node()
    node.request("POST", "/topic/create?topic=t")
    node.request("POST", "/channel/create?topic=t&channel=c")
    ok_text(node.request("POST", f"/pub?topic=t&defer={defer}", b"later"))
    channel = node.nsqd.topics["t"].channels["c"]
    if delay:
        [msg] = channel.deferred.values()
        assert msg.deadline == pytest.approx(node.clock.now() + delay)
    else:
        assert [m.body for m in channel.memory] == [b"later"]


def test_pub_refused_is_503_exiting() -> None:
    node = Node(opts={"mem_queue_size": 1})
    ok_text(node.request("POST", "/pub?topic=t", b"1"))
    error(node.request("POST", "/pub?topic=t", b"2"), 503, "EXITING")


# -- /mpub -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "bodies"),
    [
        (b"a\nb\nc", [b"a", b"b", b"c"]),
        (b"a\nb\n", [b"a", b"b"]),
        (b"\n\na\n\n\nb", [b"a", b"b"]),
        (b"", []),
        (b"\n", []),
        (b"a\r\nb", [b"a\r", b"b"]),
    ],
)
def test_mpub_lines(body: bytes, bodies: list[bytes]) -> None:
    node = Node()
    ok_text(node.request("POST", "/mpub?topic=t", body))
    assert [m.body for m in node.nsqd.topics["t"].memory] == bodies


@pytest.mark.parametrize("flag", ["binary=true", "binary=1", "binary", "binary=yes"])
def test_mpub_binary(flag: str) -> None:
    node = Node()
    ok_text(node.request("POST", f"/mpub?topic=t&{flag}", binary_mpub(b"one", b"two\nlines", b"\x00")))
    assert [m.body for m in node.nsqd.topics["t"].memory] == [b"one", b"two\nlines", b"\x00"]
    warned = ("WARN", "deprecated value 'yes' used for /mpub binary param") in node.logger.lines
    assert warned is (flag == "binary=yes")


@pytest.mark.parametrize("flag", ["binary=false", "binary=0"])
def test_mpub_binary_off(flag: str) -> None:
    node = Node()
    ok_text(node.request("POST", f"/mpub?topic=t&{flag}", b"a\nb"))
    assert [m.body for m in node.nsqd.topics["t"].memory] == [b"a", b"b"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "BAD_BODY"),
        (b"\x00\x00\x01", "BAD_BODY"),
        (binary_mpub(count=0), "BAD_BODY"),
        (binary_mpub(count=-1), "BAD_BODY"),
        (binary_mpub(b"x", count=(100 - 4) // 5 + 1), "BAD_BODY"),
        (binary_mpub(b"a", count=2), "BAD_MESSAGE"),
        (binary_mpub(b"a", count=1)[:-1], "BAD_MESSAGE"),
        (struct.pack(">ii", 1, 0), "BAD_MESSAGE"),
        (struct.pack(">ii", 1, -5), "BAD_MESSAGE"),
        (binary_mpub(b"x" * 11), "BAD_MESSAGE"),
    ],
)
def test_mpub_binary_errors(body: bytes, message: str) -> None:
    node = Node(opts={"max_msg_size": 10, "max_body_size": 100})
    error(node.request("POST", "/mpub?topic=t&binary=true", body), 413, message)
    assert node.nsqd.topics["t"].depth() == 0


def test_mpub_binary_ignores_what_follows_the_messages() -> None:
    node = Node()
    ok_text(node.request("POST", "/mpub?topic=t&binary=true", binary_mpub(b"a") + b"trailing"))
    assert [m.body for m in node.nsqd.topics["t"].memory] == [b"a"]


def test_mpub_size_limits() -> None:
    node = Node(opts={"max_msg_size": 4, "max_body_size": 20})
    error(node.request("POST", "/mpub?topic=t", b"12345\nab"), 413, "MSG_TOO_BIG")
    error(node.request("POST", "/mpub", b"x\n" * 11), 413, "BODY_TOO_BIG")  # before the topic is read
    ok_text(node.request("POST", "/mpub?topic=t", b"1234\n" * 4))
    client = node.http()
    client.send(b"POST /mpub?topic=u HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"ab\n" * 5, b"cd\n" * 5))
    [answer] = client.answers()
    error(answer, 413, "BODY_TOO_BIG")
    assert node.nsqd.topics["u"].depth() == 0  # made, as in nsqd, but nothing put


def test_mpub_binary_body_cut_at_the_limit_is_too_big() -> None:
    node = Node(opts={"max_msg_size": 10, "max_body_size": 30})
    client = node.http()
    body = binary_mpub(*[b"0123456789"] * 3)  # 46 bytes, longer than the body limit
    client.send(b"POST /mpub?topic=t&binary=1 HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body))
    [answer] = client.answers()
    error(answer, 413, "BODY_TOO_BIG")


def test_mpub_is_all_or_nothing() -> None:
    node = Node(opts={"mem_queue_size": 3})
    ok_text(node.request("POST", "/mpub?topic=t", b"a\nb"))
    error(node.request("POST", "/mpub?topic=t", b"c\nd"), 503, "EXITING")
    assert [m.body for m in node.nsqd.topics["t"].memory] == [b"a", b"b"]


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [("/mpub", 400, "MISSING_ARG_TOPIC"), ("/mpub?topic=a*", 400, "INVALID_TOPIC"), ("/mpub?topic=%", 400, "INVALID_REQUEST")],
)
def test_mpub_topic_errors(target: str, status: int, message: str) -> None:
    error(Node().request("POST", target, b"a"), status, message)


# -- topics ----------------------------------------------------------------------------


def test_topic_lifecycle() -> None:
    node = Node()
    ok_empty(node.request("POST", "/topic/create?topic=t"))
    assert "t" in node.nsqd.topics
    node.request("POST", "/pub?topic=t", b"m")
    ok_empty(node.request("POST", "/topic/empty?topic=t"))
    assert node.nsqd.topics["t"].depth() == 0
    topic = node.nsqd.topics["t"]
    ok_empty(node.request("POST", "/topic/pause?topic=t"))
    assert paused(topic)
    ok_empty(node.request("POST", "/topic/unpause?topic=t"))
    assert not paused(topic)
    ok_empty(node.request("POST", "/topic/delete?topic=t"))
    assert node.nsqd.topics == {}


def test_pause_is_persisted_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node()
    persisted: list[bool] = []
    node.request("POST", "/topic/create?topic=t")
    node.request("POST", "/channel/create?topic=t&channel=c")
    monkeypatch.setattr(node.nsqd, "persist_metadata", lambda: persisted.append(True))
    for target in ("/topic/pause?topic=t", "/topic/unpause?topic=t", "/channel/pause?topic=t&channel=c", "/channel/unpause?topic=t&channel=c"):
        ok_empty(node.request("POST", target))
    assert len(persisted) == 4  # as nsqd does, so that a crash cannot forget a (un)pause


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [
        ("/topic/create", 400, "MISSING_ARG_TOPIC"),
        ("/topic/create?topic=a%20b", 400, "INVALID_TOPIC"),
        ("/topic/create?topic=%", 400, "INVALID_REQUEST"),
        ("/topic/delete", 400, "MISSING_ARG_TOPIC"),
        ("/topic/delete?topic=nope", 404, "TOPIC_NOT_FOUND"),
        ("/topic/delete?topic=bad!", 404, "TOPIC_NOT_FOUND"),  # nsqd does not check the name here
        ("/topic/empty", 400, "MISSING_ARG_TOPIC"),
        ("/topic/empty?topic=bad!", 400, "INVALID_TOPIC"),
        ("/topic/empty?topic=nope", 404, "TOPIC_NOT_FOUND"),
        ("/topic/pause", 400, "MISSING_ARG_TOPIC"),
        ("/topic/pause?topic=nope", 404, "TOPIC_NOT_FOUND"),
        ("/topic/unpause?topic=nope", 404, "TOPIC_NOT_FOUND"),
    ],
)
def test_topic_errors(target: str, status: int, message: str) -> None:
    node = Node()
    error(node.request("POST", target), status, message)
    assert node.nsqd.topics == {}


# -- channels --------------------------------------------------------------------------


def test_channel_lifecycle() -> None:
    node = Node()
    node.request("POST", "/topic/create?topic=t")
    ok_empty(node.request("POST", "/channel/create?topic=t&channel=c"))
    channel = node.nsqd.topics["t"].channels["c"]
    node.request("POST", "/pub?topic=t", b"m")
    assert channel.depth() == 1
    ok_empty(node.request("POST", "/channel/empty?topic=t&channel=c"))
    assert channel.depth() == 0
    ok_empty(node.request("POST", "/channel/pause?topic=t&channel=c"))
    assert paused(channel)
    ok_empty(node.request("POST", "/channel/unpause?topic=t&channel=c"))
    assert not paused(channel)
    ok_empty(node.request("POST", "/channel/delete?topic=t&channel=c"))
    assert node.nsqd.topics["t"].channels == {}


@pytest.mark.parametrize("op", ["create", "delete", "empty", "pause", "unpause"])
@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "MISSING_ARG_TOPIC"),
        ("?topic=bad!&channel=c", 400, "INVALID_ARG_TOPIC"),
        ("?topic=t", 400, "MISSING_ARG_CHANNEL"),
        ("?topic=t&channel=", 400, "INVALID_ARG_CHANNEL"),
        ("?topic=t&channel=c#ephemeralx", 400, "INVALID_ARG_CHANNEL"),
        ("?topic=nope&channel=c", 404, "TOPIC_NOT_FOUND"),
        ("?topic=t&channel=%", 400, "INVALID_REQUEST"),
    ],
)
def test_channel_errors(op: str, query: str, status: int, message: str) -> None:
    node = Node()
    node.request("POST", "/topic/create?topic=t")
    error(node.request("POST", f"/channel/{op}{query}"), status, message)
    assert set(node.nsqd.topics) == {"t"} and node.nsqd.topics["t"].channels == {}


@pytest.mark.parametrize("op", ["delete", "empty", "pause", "unpause"])
def test_channel_not_found(op: str) -> None:
    node = Node()
    node.request("POST", "/topic/create?topic=t")
    error(node.request("POST", f"/channel/{op}?topic=t&channel=c"), 404, "CHANNEL_NOT_FOUND")


# -- /config ---------------------------------------------------------------------------

NOT_IN_GO_CONFIG = {"verbose", "queue_scan_interval", "queue_scan_refresh_interval", "queue_scan_dirty_percent"}


@pytest.mark.parametrize("spec", [s for s in FLAGS if s.cfg_name not in NOT_IN_GO_CONFIG], ids=lambda s: s.cfg_name)
def test_config_knows_every_nsqd_option(spec: FlagSpec) -> None:
    answer = Node().request("GET", f"/config/{spec.cfg_name}")
    assert answer.status == 200, answer
    if spec.kind == "str" and spec.cfg_name not in ("tls_required", "tls_min_version", "log_level"):
        assert answer.header("Content-Type") in (TEXT, None)  # a string goes out bare
    else:
        json.loads(answer.body)
        assert answer.header("Content-Type") == JSON


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("mem_queue_size", b"10000"),
        ("msg_timeout", b"60000000000"),
        ("min_output_buffer_timeout", b"25000000"),
        ("deflate", b"true"),
        ("log_prefix", b"[nsqd] "),
        ("statsd_prefix", b"nsq.%s"),
        ("data_path", b""),
        ("nsqlookupd_tcp_addresses", b"[]"),
        ("e2e_processing_latency_percentiles", b"null"),
        ("id", b"7"),
        ("log_level", b"2"),
        ("tls_required", b"0"),
        ("tls_min_version", b"769"),
        ("broadcast_address", b"testhost"),
        ("max_msg_size", b"1048576"),
    ],
)
def test_config_values_as_nsqd_renders_them(name: str, body: bytes) -> None:
    answer = Node().request("GET", f"/config/{name}")
    assert (answer.status, answer.body) == (200, body)


def test_config_floats_as_go_writes_them() -> None:
    node = Node(opts={"e2e_processing_latency_percentiles": [1.0, 0.99, 0.5, 1e-7]})
    assert node.request("GET", "/config/e2e_processing_latency_percentiles").body == b"[1,0.99,0.5,1e-7]"


def test_config_node_id_defaults_to_nsqd_hash_of_the_hostname() -> None:
    node = Node(opts={"node_id": -1})
    expected = zlib.crc32(hashlib.md5(b"testhost").digest()) % 1024
    assert node.request("GET", "/config/id").body == str(expected).encode()


@pytest.mark.parametrize("name", ["nope", "verbose", "queue_scan_interval", "MEM_QUEUE_SIZE", "max-msg-size"])
def test_config_unknown_option(name: str) -> None:
    error(Node().request("GET", f"/config/{name}"), 400, "INVALID_OPTION")


def test_config_put_lookupd_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node()
    calls: list[list[str]] = []
    changed = lambda: calls.append(list(node.nsqd.opts.lookupd_tcp_addresses))  # noqa: E731
    monkeypatch.setattr(node.nsqd, "on_lookupd_addresses_changed", changed)
    answer = node.request("PUT", "/config/nsqlookupd_tcp_addresses", b'["127.0.0.1:4160", "h:4162"]')
    assert (answer.status, answer.json()) == (200, ["127.0.0.1:4160", "h:4162"])
    assert calls == [["127.0.0.1:4160", "h:4162"]]
    assert node.request("GET", "/config/nsqlookupd_tcp_addresses").json() == ["127.0.0.1:4160", "h:4162"]
    ok = node.request("PUT", "/config/nsqlookupd_tcp_addresses", b"null")
    assert (ok.status, ok.body) == (200, b"[]")


@pytest.mark.parametrize("body", [b"nope", b'"a:1"', b'{"a": 1}', b"[1]", b'["a", null]', b"[] []"])
def test_config_put_lookupd_addresses_bad_json(body: bytes) -> None:
    node = Node()
    error(node.request("PUT", "/config/nsqlookupd_tcp_addresses", body), 400, "INVALID_VALUE")
    assert node.nsqd.opts.lookupd_tcp_addresses == []


@pytest.mark.parametrize(("body", "level", "answer"), [(b"debug", "debug", b"1"), (b"WARN", "warn", b"3"), (b"Fatal", "fatal", b"5")])
def test_config_put_log_level(body: bytes, level: str, answer: bytes) -> None:
    node = Node()
    seen: list[str] = []
    node.nsqd.log_level_changed = seen.append
    got = node.request("PUT", "/config/log_level", body)
    assert (got.status, got.body) == (200, answer)
    assert node.nsqd.opts.log_level == level
    assert seen == [level]


@pytest.mark.parametrize(
    ("name", "body", "status", "message"),
    [
        ("log_level", b"loud", 400, "INVALID_VALUE"),
        ("log_level", b"debug\n", 400, "INVALID_VALUE"),
        ("log_level", b"", 413, "INVALID_VALUE"),
        ("mem_queue_size", b"5", 400, "INVALID_OPTION"),
        ("nope", b"5", 400, "INVALID_OPTION"),
        ("nope", b"", 413, "INVALID_VALUE"),  # the body is checked first, as in nsqd
        ("log_level", b"x" * 11, 413, "INVALID_VALUE"),
    ],
)
def test_config_put_errors(name: str, body: bytes, status: int, message: str) -> None:
    node = Node(opts={"max_msg_size": 10})
    error(node.request("PUT", f"/config/{name}", body), status, message)
    assert node.nsqd.opts.log_level == "info"


# -- /debug ----------------------------------------------------------------------------


def test_free_memory_answers_as_nsqd_does() -> None:
    # nsqd's handler returns nothing through its plain-text wrapper, which panics: 500.
    node = Node()
    error(node.request("POST", "/debug/freememory"), 500, "INTERNAL_ERROR")
    assert ("ERROR", "panic in HTTP handler - unknown response type <nil>") in node.logger.lines


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("", 'invalid block rate : strconv.Atoi: parsing "": invalid syntax'),
        ("?rate=x", 'invalid block rate : strconv.Atoi: parsing "x": invalid syntax'),
        ("?rate=99999999999999999999", 'invalid block rate : strconv.Atoi: parsing "99999999999999999999": value out of range'),
    ],
)
def test_set_block_rate_errors_are_plain_text(query: str, text: str) -> None:
    answer = Node().request("PUT", f"/debug/setblockrate{query}")
    assert (answer.status, answer.body, answer.header("Content-Type")) == (400, text.encode(), TEXT)


def test_set_block_rate_valid() -> None:
    error(Node().request("PUT", "/debug/setblockrate?rate=1"), 500, "INTERNAL_ERROR")


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/", "/nope", "/debug/pprof/", "/pub/x", "/config", "/config/", "/topic"])
def test_not_found(target: str) -> None:
    node = Node()
    error(node.request("GET", target), 404, "NOT_FOUND")
    assert ("INFO", f"404 GET {target} (127.0.0.1:50001) 0s") in node.logger.lines


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("GET", "/pub", "OPTIONS, POST"),
        ("PUT", "/mpub", "OPTIONS, POST"),
        ("POST", "/stats", "GET, OPTIONS"),
        ("GET", "/topic/create", "OPTIONS, POST"),
        ("DELETE", "/channel/delete", "OPTIONS, POST"),
        ("POST", "/config/x", "GET, OPTIONS, PUT"),
        ("GET", "/debug/setblockrate", "OPTIONS, PUT"),
        ("GET", "*", "GET, OPTIONS, POST, PUT"),
    ],
)
def test_method_not_allowed(method: str, target: str, allow: str) -> None:
    answer = Node().request(method, target)
    error(answer, 405, "METHOD_NOT_ALLOWED")
    assert answer.header("Allow") == allow


@pytest.mark.parametrize(
    ("target", "allow"), [("/pub", "OPTIONS, POST"), ("/config/x", "GET, OPTIONS, PUT"), ("*", "GET, OPTIONS, POST, PUT")]
)
def test_options(target: str, allow: str) -> None:
    answer = Node().request("OPTIONS", target)
    assert (answer.status, answer.body, answer.header("Allow")) == (200, b"", allow)


def test_options_unknown_path_is_404() -> None:
    error(Node().request("OPTIONS", "/nope"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "target", "status", "location"),
    [
        ("GET", "/ping/", 301, "/ping"),
        ("GET", "/PING", 301, "/ping"),
        ("GET", "/Stats?format=json", 301, "/stats?format=json"),
        ("GET", "/a/../info", 301, "/info"),
        ("GET", "//ping", 301, "/ping"),
        ("POST", "/pub/?topic=t", 307, "/pub?topic=t"),
        ("POST", "/Topic/Create?topic=t", 307, "/topic/create?topic=t"),
        ("GET", "/config/mem_queue_size/", 301, "/config/mem_queue_size"),
        ("GET", "/CONFIG/Mem_Queue_Size", 301, "/config/Mem_Queue_Size"),
        ("PUT", "/Config/log_level", 307, "/config/log_level"),
        ("GET", "/config/a%20b/", 301, "/config/a%20b"),
    ],
)
def test_redirects(method: str, target: str, status: int, location: str) -> None:
    node = Node()
    answer = node.request(method, target)
    assert (answer.status, answer.header("Location")) == (status, location)
    if method == "GET":
        assert answer.header("Content-Type") == "text/html; charset=utf-8"
        assert answer.body == f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
    else:
        assert answer.body == b""
    assert node.nsqd.topics == {}


def test_a_target_go_cannot_parse_is_400_and_close() -> None:
    client = Node().http()
    answer = client.request("GET", "/p%zzing")
    assert (answer.status, answer.body, answer.header("Connection")) == (400, b"400 Bad Request", "close")
    assert client.closed


def test_tls_required_answers_403_to_everything() -> None:
    answer = Node(opts={"tls_required": "true"}).request("GET", "/ping")
    assert answer.status == 403
    assert answer.body == b'{"message": "TLS_REQUIRED", "https_port": 0}'


def test_every_answer_says_nsq_content_type_and_date() -> None:
    node = Node()
    client = node.http()
    requests = [
        ("GET", "/ping"), ("GET", "/info"), ("GET", "/stats"), ("GET", "/stats?format=json"),
        ("POST", "/pub?topic=t"), ("POST", "/topic/create?topic=t"), ("GET", "/nope"), ("GET", "/pub"),
        ("OPTIONS", "/pub"), ("GET", "/PING"), ("GET", "/config/log_prefix"), ("POST", "/debug/freememory"),
    ]  # fmt: skip
    for method, target in requests:
        answer = client.request(method, target, b"x" if method == "POST" else b"")
        assert answer.header("X-Nsq-Content-Type") == "nsq; version=1.0", (method, target)
        assert answer.header("Date") == "Sat, 28 Nov 2026 03:04:11 GMT"
    assert not client.closed


def test_many_requests_on_one_connection_pipelined() -> None:
    node = Node()
    client = node.http()
    client.send(b"".join(encode_request("POST", "/pub?topic=t", b"m%d" % i) for i in range(50)))
    answers = client.answers()
    assert [a.body for a in answers] == [b"OK"] * 50
    assert [m.body for m in node.nsqd.topics["t"].memory] == [b"m%d" % i for i in range(50)]
