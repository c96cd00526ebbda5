"""Go's encoding/json and net/url behaviour, as the HTTP answers of nsqd and nsqlookupd depend on it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.wire import gojson
from broker.wire.gourl import URLError, clean_path, parse_query, parse_target


def test_dumps_is_compact_and_keeps_order() -> None:
    assert gojson.dumps({"b": [1, True, None], "a": {"x": False, "c": -3}}) == (
        b'{"b":[1,true,null],"a":{"x":false,"c":-3}}'
    )


def test_dumps_escapes_as_go_119() -> None:
    assert gojson.dumps('<>&"\\\n\r\t\b\f\x00\x1f\x7f\u2028\u2029\udc80é') == (
        b'"\\u003c\\u003e\\u0026\\"\\\\\\n\\r\\t\\u0008\\u000c\\u0000\\u001f\x7f'
        b'\\u2028\\u2029\\ufffd\xc3\xa9"'
    )


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
)


@given(_VALUES)
def test_dumps_round_trips_through_a_json_parser(value: gojson.JSONValue) -> None:
    assert json.loads(gojson.dumps(value)) == value


def test_loads_keeps_members_in_order_with_duplicates() -> None:
    doc = gojson.loads(b'{"a": 1, "b": [{"c": null}], "a": 2}')
    assert isinstance(doc, gojson.GoObject)
    assert doc == [("a", 1), ("b", [[("c", None)]]), ("a", 2)]


@pytest.mark.parametrize("text", [b"NaN", b"[Infinity]", b"-Infinity", b"", b"{} x", b"\xef\xbb\xbf{}", b"[" * 5000])
def test_loads_rejects_what_go_rejects(text: bytes) -> None:
    with pytest.raises(gojson.JSONDecodeError):
        gojson.loads(text)


def test_loads_replaces_invalid_utf8() -> None:
    assert gojson.loads(b'"a\xffb"') == "a\ufffdb"


def test_parse_query() -> None:
    q = parse_query("topic=a+b&topic=c&x=%41&&flag&=v")
    assert q.ok
    assert q.values == {"topic": ["a b", "c"], "x": ["A"], "flag": [""], "": ["v"]}


@pytest.mark.parametrize("raw", ["a=%", "a=%4", "a=%zz", "a=1;b=2", "%zz=1"])
def test_parse_query_errors_keep_good_pairs(raw: str) -> None:
    q = parse_query(raw + "&good=1")
    assert not q.ok
    assert q.values["good"] == ["1"]


def test_parse_target() -> None:
    t = parse_target(b"/a%20b+c?x=1&y=%zz")
    assert (t.path, t.raw_query) == ("/a b+c", "x=1&y=%zz")
    assert parse_target(b"http://h:1/p?q").path == "/p"
    assert parse_target(b"http://h:1").path == ""
    assert parse_target(b"/%ff").path == "/\udcff"
    for bad in (b"/%zz", b"p", b"/a\x00", b""):
        with pytest.raises(URLError):
            parse_target(bad)


@pytest.mark.parametrize(
    ("path", "clean"),
    [("", "/"), ("/", "/"), ("//a//b/", "/a/b/"), ("/a/./b/..", "/a/"), ("/../a", "/a"), ("a", "/a")],
)
def test_clean_path(path: str, clean: str) -> None:
    assert clean_path(path) == clean
