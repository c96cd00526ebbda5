"""The utilities' pure parts: option passthrough, file names, JSON filters, host picking, reports."""

from __future__ import annotations

import pytest
from rich.console import Console

from broker.apps.nsq_stat import ChannelStats, StatOptions, render
from broker.apps.nsq_to_file import ToFileOptions, filename_format
from broker.apps.nsq_to_nsq import ToNSQOptions, json_filter
from broker.apps.toolkit import HostPool, Timings, ToolError, apply_client_options
from broker.client.config import ClientConfig
from tests.fakes import RecordingLogger


def test_client_options_pass_through_as_go_nsq_reads_them() -> None:
    config = apply_client_options(
        ClientConfig(),
        ["max_attempts,10", "backoff_multiplier,250ms", "lookupd-poll-jitter,0.5", "msg_timeout,30s", "user_agent,me/1"],
    )
    assert (config.max_attempts, config.backoff_multiplier, config.lookupd_poll_jitter) == (10, 0.25, 0.5)
    assert (config.msg_timeout, config.user_agent) == (30.0, "me/1")


@pytest.mark.parametrize(
    ("option", "message"),
    [("no_such_option,1", "invalid option no_such_option"), ("max_attempts,lots", "failed to coerce"), ("sample_rate,100", "sample_rate")],
)
def test_bad_client_options_are_tool_errors(option: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        apply_client_options(ClientConfig(), [option])


def test_file_names_follow_gos_rules() -> None:
    plain = ToFileOptions(work_dir="/tmp")
    assert filename_format(plain, "t", "box.example.com") == "t.box.<DATETIME>.log"
    gz = ToFileOptions(work_dir="/tmp", gzip=True)
    assert filename_format(gz, "t", "box.example.com") == "t.box<REV>.<DATETIME>.log.gz"
    custom = ToFileOptions(work_dir="/tmp", host_identifier="<SHORT_HOST>-<HOSTNAME>", filename_format="<HOST>/<TOPIC>.log")
    assert filename_format(custom, "t", "box.example.com") == "box-box.example.com/t.log"
    with pytest.raises(ToolError, match="missing <REV>"):
        filename_format(ToFileOptions(work_dir="/elsewhere", filename_format="<TOPIC>.log"), "t", "h")


def test_json_filters_pass_drop_or_trim_as_go_does() -> None:
    require = ToNSQOptions(require_json_field="kind", require_json_value="click")
    assert json_filter(require, b'{"kind":"click","n":1}') == (b'{"kind":"click","n":1}', False)
    assert json_filter(require, b'{"kind":"view"}') == (None, False)  # finished, not published
    assert json_filter(require, b'{"other":1}') == (None, True)  # missing: requeued, with backoff
    logged: list[bytes] = []
    assert json_filter(require, b"not json", logged.append) == (None, False)
    assert json_filter(require, b"[1]", logged.append) == (None, False)  # Go cannot decode it into a map either
    assert logged == [b"ERROR: Unable to decode json: not json", b"ERROR: Unable to decode json: [1]"]
    assert json_filter(ToNSQOptions(whitelist_json_fields=["a"]), b"null") == (b"{}", False)  # null: an empty map
    numeric = ToNSQOptions(require_json_field="n", require_json_value="2")
    assert json_filter(numeric, b'{"n":2.0}')[0] is not None
    trim = ToNSQOptions(whitelist_json_fields=["b", "a"])
    assert json_filter(trim, b'{"a":1.0,"b":"x","c":3}') == (b'{"a":1,"b":"x"}', False)
    assert json_filter(ToNSQOptions(), b"anything") == (b"anything", False)


def test_host_pool_skips_failing_hosts_and_round_robin_does_not() -> None:
    now = [0.0]
    pool = HostPool(["a", "b", "c"], "hostpool", lambda: now[0], retry_delay=10)
    assert [pool.get() for _ in range(4)] == ["a", "b", "c", "a"]
    pool.mark("b", False)
    assert [pool.get() for _ in range(3)] == ["c", "a", "c"]  # b is out for 10s
    now[0] = 10.0
    assert "b" in {pool.get() for _ in range(3)}
    for host in "abc":
        pool.mark(host, False)
    assert pool.get() in "abc"  # all out: all are tried again
    rr = HostPool(["a", "b"], "round-robin", lambda: 0.0)
    rr.mark("a", False)
    assert [rr.get() for _ in range(3)] == ["a", "b", "a"]
    with pytest.raises(ToolError):
        HostPool(["a"], "random", lambda: 0.0)


def test_timings_report_every_n_requests_with_gos_percentiles() -> None:
    log = RecordingLogger()
    timings = Timings(4, log, "[x]: ")
    for ms in (1, 2, 3):
        timings.add(ms / 1000)
    assert log.lines == []
    timings.add(0.010)
    assert log.lines == [("INFO", "[x]: finished 4 requests - 99th: 10.00ms - 95th: 10.00ms - avg: 4.00ms")]


def test_the_stat_table_has_a_row_per_nsqd_and_a_total() -> None:
    opts = StatOptions(topic="t", channel="c", count=2)
    before = {"a:1": ChannelStats(depth=10, messages=100), "b:1": ChannelStats(depth=0, messages=50)}
    now = {"a:1": ChannelStats(depth=4, backend_depth=1, messages=120, clients=1), "b:1": ChannelStats(messages=60, in_flight=2)}
    console = Console(width=200, record=True)
    console.print(render(opts, now, before, 2.0, 1))
    text = console.export_text()
    cells = [line.replace("│", " ").split() for line in text.splitlines() if line.startswith("│")]
    rows = {row[0]: row for row in cells}
    # nsqd, ingress/s, egress/s, depth, mem, disk, inflt, def, req, t-o, msgs, clients
    assert rows["a:1"] == ["a:1", "10", "13", "4", "3", "1", "0", "0", "0", "0", "120", "1"]
    assert rows["b:1"] == ["b:1", "5", "5", "0", "0", "0", "2", "0", "0", "0", "60", "0"]
    assert rows["total"] == ["total", "15", "18", "4", "3", "1", "2", "0", "0", "0", "180", "1"]
    assert "t/c - report 1 of 2" in text
