"""Flags accepted without effect: refused when they touch security, warned about otherwise.

The decision reads the flag tables' ``implemented`` markers, so these tests
also flip a marker and check that the refusal goes with it.
"""

from __future__ import annotations

import dataclasses

import pytest

from broker.apps import nsqd as nsqd_app
from broker.apps.goflags import FlagSet, check_without_effect
from broker.apps.nsqd import check_options, check_tls_required, flag_set
from broker.lookupd.options import FLAGS as LOOKUPD_FLAGS
from broker.lookupd.options import LookupdOptions
from broker.nsqd.options import FLAGS, SECURITY_FLAGS, FlagSpec, Options, spec_by_flag


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


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--tls-cert=/c.pem", "--tls-key=/k.pem"], "--tls-cert=/c.pem"),
        (["--tls-root-ca-file=/ca.pem"], "--tls-root-ca-file=/ca.pem"),
        (["--tls-min-version=tls1.2"], "--tls-min-version=tls1.2"),
        (["--auth-http-address=127.0.0.1:4181"], "--auth-http-address=127.0.0.1:4181"),
        (["--https-address=127.0.0.1:4152"], "--https-address=127.0.0.1:4152"),
    ],
)
def test_a_security_flag_without_effect_refuses_to_start_naming_it(argv: list[str], flag: str) -> None:
    with pytest.raises(ValueError, match="refusing to start") as err:
        run_check(flag_set("testhost"), *argv)
    assert str(err.value).startswith(f"{flag} is not implemented yet;")


def test_every_flag_of_the_security_set_is_in_the_table() -> None:
    assert {s.flag for s in FLAGS} >= SECURITY_FLAGS


def test_an_implemented_marker_lifts_the_refusal() -> None:
    flags = with_implemented("tls-cert", "tls-key")
    assert run_check(flags, "--tls-cert=/c.pem", "--tls-key=/k.pem") == []
    with pytest.raises(ValueError, match="--tls-root-ca-file"):
        run_check(flags, "--tls-root-ca-file=/ca.pem")


def test_any_other_flag_without_effect_is_one_warning_line_each() -> None:
    assert run_check(flag_set("testhost"), "--snappy=false", "--deflate=false", "--mem-queue-size=5") == [
        "--deflate=false has no effect: not implemented yet",
        "--snappy=false has no effect: not implemented yet",
    ]
    assert run_check(with_implemented("snappy"), "--snappy=false") == []
    # statsd works now: its flags say nothing
    assert run_check(flag_set("testhost"), "--statsd-address=127.0.0.1:8125", "--statsd-interval=10s") == []


def test_tls_required_refuses_to_start_while_https_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even once every --tls-* flag works, "true" turns plain HTTP away to an HTTPS port nobody listens on.
    flags = with_implemented(*(f for f in SECURITY_FLAGS if f.startswith("tls-")))
    opts = check_options(flags.resolve(flags.parse(["--tls-required=true", "--tls-cert=/c", "--tls-key=/k"]), {}))
    check_without_effect(flags, opts, SECURITY_FLAGS, lambda line: None)
    with pytest.raises(ValueError, match="--https-address is not implemented"):
        check_tls_required(opts)
    check_tls_required(opts.replace(tls_required="tcp-https"))
    https = spec_by_flag("https-address")
    assert https is not None
    implemented = dataclasses.replace(https, implemented=True)
    monkeypatch.setattr(nsqd_app, "spec_by_flag", lambda name: implemented if name == "https-address" else spec_by_flag(name))
    check_tls_required(opts)


def test_nsqlookupd_warns_about_verbose() -> None:
    flags = FlagSet("nsqlookupd", LOOKUPD_FLAGS, LookupdOptions())
    opts = flags.resolve(flags.parse(["--verbose"]), {})
    warnings: list[str] = []
    check_without_effect(flags, opts, (), warnings.append)
    assert warnings == ["--verbose=true has no effect: not implemented yet"]


def test_flag_spec_defaults_to_implemented() -> None:
    assert FlagSpec("x", "x", "int", "").implemented
