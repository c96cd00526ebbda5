"""nsqlookupd's options table."""

from __future__ import annotations

import dataclasses

from broker.lookupd.options import FLAGS, LookupdOptions, spec_by_cfg_name, spec_by_flag


def test_defaults_are_go_nsqlookupd_130s() -> None:
    opts = LookupdOptions()
    assert (opts.tcp_address, opts.http_address) == ("0.0.0.0:4160", "0.0.0.0:4161")
    assert opts.broadcast_address == ""  # the hostname
    assert (opts.inactive_producer_timeout, opts.tombstone_lifetime) == (300.0, 45.0)
    assert (opts.log_level, opts.log_prefix) == ("info", "[nsqlookupd] ")


def test_every_flag_names_an_option_and_every_option_has_a_flag() -> None:
    attrs = {f.name for f in dataclasses.fields(LookupdOptions)}
    assert {s.attr for s in FLAGS} == attrs
    assert [s.flag for s in FLAGS] == [
        "log-level",
        "log-prefix",
        "verbose",
        "tcp-address",
        "http-address",
        "broadcast-address",
        "inactive-producer-timeout",
        "tombstone-lifetime",
    ]
    assert {s.kind for s in FLAGS if s.attr.endswith(("timeout", "lifetime"))} == {"duration"}


def test_lookup_by_flag_and_config_name() -> None:
    spec = spec_by_flag("tombstone-lifetime")
    assert spec is not None
    assert spec_by_cfg_name("tombstone_lifetime") is spec
    assert spec_by_flag("nope") is None


def test_replace() -> None:
    assert LookupdOptions().replace(tombstone_lifetime=1.0).tombstone_lifetime == 1.0
