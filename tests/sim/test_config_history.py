"""Configurations (TOML in, typed objects out, typos rejected), fault schedules and histories."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nsqsim.config import ClusterConfig, ConfigError, load_config, parse_config
from nsqsim.history import History, load, read_events
from nsqsim.nemesis import FAULT_KINDS, FaultModel, ScheduledFault, Targets, draw_schedule

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_reference_cluster_is_what_the_brief_says() -> None:
    cfg = load_config(str(EXAMPLES / "reference-cluster.toml"))
    assert cfg.nsqd.count == 3 and cfg.lookupd.count == 2
    assert [(p.count, p.rate) for p in cfg.producers] == [(4, 250.0)]
    assert sorted(c.channel for c in cfg.consumers) == ["archive", "index"]
    assert all(c.count == 2 for c in cfg.consumers)
    assert cfg.faults.enabled
    assert len(cfg.digest()) == 16


def test_nsqd_options_use_the_daemons_config_names_and_syntax() -> None:
    cfg = parse_config(
        {
            "nsqd": {"count": 2, "options": {"msg_timeout": "5s", "mem_queue_size": 7}, "nodes": {"nsqd-1": {"mem_queue_size": 3}}},
            "lookupd": {"count": 1, "options": {"tombstone_lifetime": "10s"}},
        }
    )
    o0 = cfg.nsqd.options_for(0, cfg.lookupd.tcp_addresses())
    o1 = cfg.nsqd.options_for(1, cfg.lookupd.tcp_addresses())
    assert (o0.msg_timeout, o0.mem_queue_size, o1.mem_queue_size) == (5.0, 7, 3)
    assert o0.node_id == 0 and o1.node_id == 1
    assert o0.tcp_address == "nsqd-0:4150" and o0.lookupd_tcp_addresses == ["lookupd-0:4160"]
    assert cfg.lookupd.options_for(0).tombstone_lifetime == 10.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"durattion": 5}, "unknown keys"),
        ({"nsqd": {"options": {"mem_queue_sise": 1}}}, "unknown options"),
        ({"nsqd": {"count": 1, "nodes": {"nsqd-7": {}}}}, "no such node"),
        ({"producers": [{"nsqd": ["nsqd-9"]}]}, "no such nsqd"),
        ({"producers": [{"rate": "fast"}]}, "must be a number"),
        ({"consumers": [{"behaviour": {"finish": 0}}]}, "behaviour"),
        ({"consumers": [{"discovery": "dns"}]}, "discovery"),
        ({"lookupd": {"count": 0}, "consumers": [{}]}, "lookupd discovery"),
        ({"faults": {"weights": {"meteor": 1}}}, "unknown fault kind"),
        ({"faults": {"schedule": [{"at": 1, "kind": "crash", "mode": "gentle"}]}}, "partition mode"),
        ({"network": {"latency": {"kind": "zipf"}}}, "distribution"),
        ({"faults": {"schedule": [{"at": 1, "kind": "disk", "disk": "full", "file": "nsqd.dat"}]}}, "bitflip"),
        ({"faults": {"schedule": [{"at": 1, "kind": "disk", "disk": "bitflip", "file": "../nsqd.dat"}]}}, "one file"),
    ],
)
def test_bad_configurations_say_why(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(table)


def test_load_config_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(str(tmp_path / "nope.toml"))


def test_explicit_schedule_parses_and_random_faults_come_from_the_seed() -> None:
    cfg = parse_config(
        {
            "faults": {
                "enabled": True,
                "schedule": [{"at": 3.0, "kind": "partition_node", "target": "nsqd-0", "duration": 2.0, "mode": "reset"}],
            }
        }
    )
    targets = Targets(nsqd=("nsqd-0", "nsqd-1"), lookupd=("lookupd-0",), consumers=("c-0",))
    one = draw_schedule(cfg.faults, random.Random(4), targets, until=60.0)
    two = draw_schedule(cfg.faults, random.Random(4), targets, until=60.0)
    assert one == two
    assert ScheduledFault(3.0, "partition_node", "nsqd-0", 2.0, "reset") in one
    assert len(one) > 1
    assert all(f.kind in FAULT_KINDS and f.at < 60.0 for f in one)
    assert [f.at for f in one] == sorted(f.at for f in one)


def test_restricting_fault_kinds() -> None:
    model = FaultModel().only(["crash"])
    targets = Targets(nsqd=("nsqd-0",), lookupd=(), consumers=())
    drawn = draw_schedule(model, random.Random(1), targets, until=100.0)
    assert drawn and {f.kind for f in drawn} == {"crash"}
    with pytest.raises(ValueError):
        FaultModel().only(["earthquake"])


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def test_history_lines_are_canonical_and_load_as_a_dataframe(tmp_path: Path) -> None:
    clock = _Clock()
    h = History(clock)  # type: ignore[arg-type]
    h.record("publish", producer="p-0", nsqd="nsqd-0", topic="t", key="p-0:1", defer_ms=0)
    clock.t = 0.5
    h.record("publish_ok", producer="p-0", key="p-0:1")
    lines = list(h.lines())
    assert lines[0] == '{"defer_ms":0,"key":"p-0:1","nsqd":"nsqd-0","producer":"p-0","t":0.0,"topic":"t","type":"publish"}'
    path = tmp_path / "h.jsonl"
    h.write(str(path))
    assert read_events(str(path)) == h.events
    df = load(str(path))
    assert list(df["type"]) == ["publish", "publish_ok"]
    assert df["t"].iloc[1] == 0.5


def test_default_config_is_runnable() -> None:
    assert isinstance(parse_config({}), ClusterConfig)
