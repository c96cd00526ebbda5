"""Flags accepted without effect: refused when they touch security, warned about otherwise.

The decision reads the flag tables' ``implemented`` markers, so these tests
also flip a marker and check that the refusal goes with it.
"""

from __future__ import annotations

import dataclasses

import pytest

from broker.apps.goflags import FlagSet, check_without_effect
from broker.apps.nsqd import check_options, flag_set
from broker.lookupd.options import FLAGS as LOOKUPD_FLAGS
from broker.lookupd.options import LookupdOptions
from broker.nsqd.options import FLAGS, SECURITY_FLAGS, FlagSpec, Options


def run_check(flags: FlagSet[Options], *argv: str) -> list[str]:
    opts = check_options(flags.resolve(flags.parse(argv), {}))
    warnings: list[str] = []
    check_without_effect(flags, opts, SECURITY_FLAGS, warnings.append)
    return warnings


def with_implemented(*names: str) -> FlagSet[Options]:
    specs = [dataclasses.replace(s, implemented=True) if s.flag in names else s for s in FLAGS]
    return FlagSet("nsqd", specs, flag_set("testhost").defaults)


def test_the_defaults_say_nothing() -> None:
    assert run_check(flag_set("testhost")) == []


def test_a_security_flag_without_effect_refuses_to_start_naming_it() -> None:
    # (every security flag works now: mark one unimplemented to see the refusal)
    specs = [dataclasses.replace(s, implemented=False) if s.flag == "auth-http-address" else s for s in FLAGS]
    flags = FlagSet("nsqd", specs, flag_set("testhost").defaults)
    with pytest.raises(ValueError, match="refusing to start") as err:
        run_check(flags, "--auth-http-address=a:1", "--auth-http-address=b:2")
    assert str(err.value).startswith("--auth-http-address=a:1,b:2 is not implemented yet;")


def test_every_flag_of_the_security_set_is_in_the_table() -> None:
    assert {s.flag for s in FLAGS} >= SECURITY_FLAGS


def test_the_security_flags_all_work_now() -> None:
    # they refuse nothing here (the TLS files are checked when the context is built)
    assert run_check(flag_set("testhost"), "--tls-cert=/c.pem", "--tls-key=/k.pem", "--tls-min-version=tls1.2") == []
    assert run_check(flag_set("testhost"), "--auth-http-address=127.0.0.1:4181", "--https-address=127.0.0.1:1") == []


def test_any_other_flag_without_effect_is_one_warning_line_each() -> None:
    specs = [dataclasses.replace(s, implemented=False) if s.flag == "http-client-connect-timeout" else s for s in FLAGS]
    flags = FlagSet("nsqd", specs, flag_set("testhost").defaults)
    assert run_check(flags, "--http-client-connect-timeout=3s", "--mem-queue-size=5") == [
        "--http-client-connect-timeout=3s has no effect: not implemented yet",
    ]
    assert run_check(with_implemented("http-client-connect-timeout"), "--http-client-connect-timeout=3s") == []
    assert run_check(flag_set("testhost"), "--snappy=false", "--deflate=false") == []
    # statsd works now: its flags say nothing
    assert run_check(flag_set("testhost"), "--statsd-address=127.0.0.1:8125", "--statsd-interval=10s") == []


def test_nsqlookupd_warns_about_verbose() -> None:
    flags = FlagSet("nsqlookupd", LOOKUPD_FLAGS, LookupdOptions())
    opts = flags.resolve(flags.parse(["--verbose"]), {})
    warnings: list[str] = []
    check_without_effect(flags, opts, (), warnings.append)
    assert warnings == ["--verbose=true has no effect: not implemented yet"]


def test_flag_spec_defaults_to_implemented() -> None:
    assert FlagSpec("x", "x", "int", "").implemented
