"""Go's flag syntax, Go durations and nsqd's --config resolution, on nsqd's real flag table."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.apps.goflags import (
    ConfigError,
    FlagError,
    FlagSet,
    HelpRequested,
    Parsed,
    format_go_duration,
    format_go_duration_ns,
    load_toml,
    parse_go_bool,
    parse_go_duration,
    parse_go_duration_ns,
    parse_go_float,
    parse_go_int,
)
from broker.apps.govalues import go_float_text
from broker.apps.nsqd import check_options, default_node_id, flag_set
from broker.nsqd.options import FlagSpec, Options

NS = 1
US = 1_000
MS = 1_000_000
S = 1_000_000_000
MIN = 60 * S
H = 60 * MIN
MAX_NS = (1 << 63) - 1


# -- durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("0s", 0),
        ("250ms", 250 * MS),
        ("1m0s", MIN),
        ("1h", H),
        ("1.5s", 1500 * MS),
        ("2h45m", 2 * H + 45 * MIN),
        ("-1s", -S),
        ("+5m", 5 * MIN),
        ("1ns", 1),
        ("7us", 7 * US),
        ("7\u00b5s", 7 * US),
        ("7\u03bcs", 7 * US),
        (".5s", 500 * MS),
        ("1.s", S),
        ("1h1m1s1ms1us1ns", H + MIN + S + MS + US + NS),
        ("1.0000000001s", S),  # sub-nanosecond digits are dropped
        ("9223372036854775807ns", MAX_NS),
        ("2562047h47m16.854775807s", MAX_NS),
        ("-2562047h47m16.854775808s", -(1 << 63)),
    ],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration_ns(text) == ns
    assert parse_go_duration(text) == ns / 1e9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1.", 'time: missing unit in duration "1."'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("-", 'time: invalid duration "-"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
        ("1s ", 'time: unknown unit "s " in duration "1s "'),
        (" 1s", 'time: invalid duration " 1s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
    ],
)
def test_parse_go_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_go_duration_ns(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (999, "999ns"),
        (2 * US, "2\u00b5s"),
        (1500, "1.5\u00b5s"),
        (25 * MS, "25ms"),
        (250 * MS, "250ms"),
        (1_234_567, "1.234567ms"),
        (S, "1s"),
        (1500 * MS, "1.5s"),
        (59 * S, "59s"),
        (MIN, "1m0s"),
        (15 * MIN, "15m0s"),
        (H, "1h0m0s"),
        (2 * H + 45 * MIN, "2h45m0s"),
        (H + 1, "1h0m0.000000001s"),
        (-S, "-1s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
        (MAX_NS, "2562047h47m16.854775807s"),
    ],
)
def test_format_go_duration(ns: int, text: str) -> None:
    assert format_go_duration_ns(ns) == text


def test_format_go_duration_of_seconds() -> None:
    assert format_go_duration(60.0) == "1m0s"
    assert format_go_duration(0.25) == "250ms"
    assert format_go_duration(0.025) == "25ms"
    assert format_go_duration(900.0) == "15m0s"


@given(st.integers(min_value=-(1 << 63), max_value=MAX_NS))
def test_duration_round_trips_exactly_in_nanoseconds(ns: int) -> None:
    assert parse_go_duration_ns(format_go_duration_ns(ns)) == ns


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
def test_duration_round_trips_in_seconds(seconds: float) -> None:
    ns = round(seconds * 1e9)
    assert parse_go_duration(format_go_duration(seconds)) == ns / 1e9


# -- other Go value syntaxes --------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_go_bool_true(text: str) -> None:
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_go_bool_false(text: str) -> None:
    assert parse_go_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "tRUE", "2", " true"])
def test_parse_go_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^parse error$"):
        parse_go_bool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("-5", -5),
        ("+5", 5),
        ("0", 0),
        ("0x1f", 31),
        ("0X1F", 31),
        ("0o17", 15),
        ("017", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("0x_1f", 31),
        ("9223372036854775807", MAX_NS),
        ("-9223372036854775808", -(1 << 63)),
    ],
)
def test_parse_go_int(text: str, value: int) -> None:
    assert parse_go_int(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "parse error"),
        ("abc", "parse error"),
        (" 1", "parse error"),
        ("1.5", "parse error"),
        ("08", "parse error"),
        ("0x", "parse error"),
        ("_1", "parse error"),
        ("1_", "parse error"),
        ("1__0", "parse error"),
        ("9223372036854775808", "value out of range"),
        ("-9223372036854775809", "value out of range"),
    ],
)
def test_parse_go_int_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_go_int(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.25", 0.25), ("1", 1.0), ("-1.5e3", -1500.0), (".5", 0.5), ("0x1p-2", 0.25), ("1_0.5", 10.5)],
)
def test_parse_go_float(text: str, value: float) -> None:
    assert parse_go_float(text) == value


@pytest.mark.parametrize(
    ("text", "message"), [("", "parse error"), ("x", "parse error"), (" 1", "parse error"), ("1e400", "value out of range")]
)
def test_parse_go_float_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_go_float(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.25, "0.25"), (1.0, "1"), (100000.0, "100000"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (1e-5, "1e-05"), (-2.5, "-2.5")],
)
def test_go_float_text_is_strconv_g_shortest(value: float, text: str) -> None:
    assert go_float_text(value) == text


# -- the command line ---------------------------------------------------------------

FLAGS = flag_set("testhost")


def parse(*argv: str) -> Parsed:
    return FLAGS.parse(argv)


def options(*argv: str, config: dict[str, object] | None = None) -> Options:
    return FLAGS.resolve(parse(*argv), config or {})


@pytest.mark.parametrize(
    "argv",
    [
        ["-mem-queue-size=5"],
        ["--mem-queue-size=5"],
        ["-mem-queue-size", "5"],
        ["--mem-queue-size", "5"],
        ["--mem-queue-size=7", "--mem-queue-size=5"],  # the last one wins
        ["--mem-queue-size=0x5"],
    ],
)
def test_value_flag_forms(argv: list[str]) -> None:
    assert options(*argv).mem_queue_size == 5


def test_value_may_start_with_a_dash() -> None:
    assert options("--node-id", "-1").node_id == -1


def test_an_equals_sign_in_the_value_is_kept() -> None:
    assert options("--statsd-prefix=a=b").statsd_prefix == "a=b"


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["-statsd-exclude-ephemeral"], True),
        (["--statsd-exclude-ephemeral"], True),
        *[([f"--statsd-exclude-ephemeral={t}"], True) for t in ("1", "t", "T", "TRUE", "true", "True")],
        *[([f"--statsd-exclude-ephemeral={f}"], False) for f in ("0", "f", "F", "FALSE", "false", "False")],
        ([], False),
    ],
)
def test_bool_flag_forms(argv: list[str], value: bool) -> None:
    assert options(*argv).statsd_exclude_ephemeral is value


def test_bool_flag_does_not_take_the_next_argument() -> None:
    parsed = parse("--snappy", "false", "--mem-queue-size=5")
    assert parsed.values == {"snappy": True}
    assert parsed.args == ["false", "--mem-queue-size=5"]


def test_double_dash_ends_the_flags() -> None:
    parsed = parse("--mem-queue-size=5", "--", "--foo")
    assert parsed.values == {"mem-queue-size": 5}
    assert parsed.args == ["--foo"]


@pytest.mark.parametrize("first", ["positional", "-", ""])
def test_first_non_flag_stops_parsing(first: str) -> None:
    parsed = parse("--deflate=false", first, "--mem-queue-size=5")
    assert parsed.values == {"deflate": False}
    assert parsed.args == [first, "--mem-queue-size=5"]


def test_repeatable_string_flag_appends() -> None:
    opts = options("--lookupd-tcp-address=a:1", "-lookupd-tcp-address", "b:2")
    assert opts.lookupd_tcp_addresses == ["a:1", "b:2"]


def test_float_list_splits_commas_and_sorts_descending() -> None:
    opts = options("--e2e-processing-latency-percentile=0.5,0.99", "--e2e-processing-latency-percentile", "0.95")
    assert opts.e2e_processing_latency_percentiles == [0.99, 0.95, 0.5]


@pytest.mark.parametrize(
    ("argv", "seconds"),
    [(["--msg-timeout=1m30s"], 90.0), (["--msg-timeout", "250ms"], 0.25), (["--msg-timeout=0"], 0.0), (["--msg-timeout=1.5h"], 5400.0)],
)
def test_duration_flag(argv: list[str], seconds: float) -> None:
    assert options(*argv).msg_timeout == seconds


@pytest.mark.parametrize(
    ("argv", "level"), [(["--log-level=WARN"], "warn"), (["--log-level", "Debug"], "debug"), ([], "info")]
)
def test_log_level_is_case_insensitive(argv: list[str], level: str) -> None:
    assert options(*argv).log_level == level


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["--tls-required"], "true"),
        (["--tls-required=TRUE"], "true"),
        (["--tls-required=0"], "false"),
        (["--tls-required=tcp-https"], "tcp-https"),
        (["--tls-required=TCP-HTTPS"], "tcp-https"),
        ([], "false"),
    ],
)
def test_tls_required_is_a_bool_flag_with_a_third_value(argv: list[str], value: str) -> None:
    assert options(*argv).tls_required == value


@pytest.mark.parametrize(
    ("argv", "value"), [(["--tls-min-version=TLS1.2"], "tls1.2"), (["--tls-min-version="], "tls1.0"), ([], "tls1.0")]
)
def test_tls_min_version(argv: list[str], value: str) -> None:
    assert options(*argv).tls_min_version == value


def test_command_flags_are_parsed_but_are_not_options() -> None:
    parsed = parse("--version", "--config", "/x.toml", "--worker-id")
    assert parsed.values == {"version": True, "config": "/x.toml", "worker-id": True}
    assert FLAGS.resolve(parsed, {}) == flag_set("testhost").resolve(Parsed(), {})


def test_deprecated_alias_sets_the_option_and_is_reported() -> None:
    parsed = parse("--max-message-size=10")
    assert FLAGS.resolve(parsed, {}).max_msg_size == 10
    assert parsed.deprecated == [("max-message-size", "max-msg-size")]


def test_flag_wins_over_its_deprecated_alias() -> None:
    parsed = parse("--max-message-size=10", "--max-msg-size=20")
    assert FLAGS.resolve(parsed, {}).max_msg_size == 20
    assert parsed.deprecated == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--foo"], "flag provided but not defined: -foo"),
        (["-foo=1"], "flag provided but not defined: -foo"),
        (["---x"], "bad flag syntax: ---x"),
        (["-=x"], "bad flag syntax: -=x"),
        (["--mem-queue-size"], "flag needs an argument: -mem-queue-size"),
        (["--mem-queue-size=x"], 'invalid value "x" for flag -mem-queue-size: parse error'),
        (["-mem-queue-size", "1.5"], 'invalid value "1.5" for flag -mem-queue-size: parse error'),
        (["--node-id=99999999999999999999"], 'invalid value "99999999999999999999" for flag -node-id: value out of range'),
        (["--msg-timeout=5"], 'invalid value "5" for flag -msg-timeout: parse error'),
        (["--queue-scan-dirty-percent=x"], 'invalid value "x" for flag -queue-scan-dirty-percent: parse error'),
        (["--e2e-processing-latency-percentile=0.5,x"], 'invalid value "0.5,x" for flag -e2e-processing-latency-percentile: parse error'),
        (["--snappy=yes"], 'invalid boolean value "yes" for -snappy: parse error'),
        (["--snappy="], 'invalid boolean value "" for -snappy: parse error'),
        (["--log-level=warning"], "invalid value \"warning\" for flag -log-level: invalid log level 'warning' (debug, info, warn, error, fatal)"),
        (["--tls-required=maybe"], 'invalid boolean value "maybe" for -tls-required: strconv.ParseBool: parsing "maybe": invalid syntax'),
        (["--tls-min-version=tls9"], 'invalid value "tls9" for flag -tls-min-version: unknown tlsVersionOption "tls9"'),
        (["--worker-id=5"], 'invalid boolean value "5" for -worker-id: parse error'),
    ],
)
def test_parse_errors_read_like_go(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as err:
        parse(*argv)
    assert str(err.value) == message


@pytest.mark.parametrize("argv", [["-h"], ["-help"], ["--help"], ["--mem-queue-size=1", "-h", "--foo"]])
def test_help_is_requested(argv: list[str]) -> None:
    with pytest.raises(HelpRequested):
        parse(*argv)


def exit_of(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        FLAGS.parse_or_exit(argv, out)
    assert isinstance(exited.value.code, int)
    return exited.value.code, out.getvalue()


def test_help_prints_usage_and_exits_0() -> None:
    code, text = exit_of(["--help"])
    assert code == 0
    assert text == FLAGS.usage()


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (["--foo"], "flag provided but not defined: -foo"),
        (["--mem-queue-size=x"], 'invalid value "x" for flag -mem-queue-size: parse error'),
        (["extra"], "unexpected argument: extra"),
        (["--snappy", "false"], "unexpected argument: false"),
    ],
)
def test_errors_print_message_then_usage_and_exit_2(argv: list[str], first_line: str) -> None:
    code, text = exit_of(argv)
    assert code == 2
    assert text == first_line + "\n" + FLAGS.usage()


def test_parse_or_exit_returns_what_parse_does() -> None:
    out = io.StringIO()
    assert FLAGS.parse_or_exit(["--mem-queue-size=3"], out).values == {"mem-queue-size": 3}
    assert out.getvalue() == ""


# -- usage ------------------------------------------------------------------------


@dataclass
class Small:
    name: str = "x"
    count: int = 0
    wait: float = 60.0
    on: bool = False
    yes: bool = True
    addrs: list[str] = field(default_factory=list)
    ratio: float = 0.25


SMALL = (
    FlagSpec("wait", "wait", "duration", "how long"),
    FlagSpec("name", "name", "str", "the `label` to use"),
    FlagSpec("count", "count", "int", "how many"),
    FlagSpec("on", "on", "bool", "switch it on"),
    FlagSpec("yes", "yes", "bool", "say yes"),
    FlagSpec("addrs", "addrs", "str_list", "an address\nrepeatable"),
    FlagSpec("ratio", "ratio", "float", "a share"),
    FlagSpec("v", "", "bool", "short"),
    FlagSpec("n", "", "int", "short with a value"),
)


def test_usage_is_go_print_defaults() -> None:
    assert FlagSet("small", SMALL, Small()).usage() == (
        "Usage of small:\n"
        "  -addrs value\n"
        "    \tan address\n"
        "    \trepeatable\n"
        "  -count int\n"
        "    \thow many\n"
        "  -n int\n"
        "    \tshort with a value\n"
        "  -name label\n"
        '    \tthe label to use (default "x")\n'
        "  -on\n"
        "    \tswitch it on\n"
        "  -ratio float\n"
        "    \ta share (default 0.25)\n"
        "  -v\tshort\n"
        "  -wait duration\n"
        "    \thow long (default 1m0s)\n"
        "  -yes\n"
        "    \tsay yes (default true)\n"
    )


def test_nsqd_usage_shows_derived_defaults() -> None:
    text = flag_set("testhost").usage()
    assert text.startswith("Usage of nsqd:\n  -auth-http-address value\n")
    assert '  -broadcast-address string\n    \taddress announced to nsqlookupd (default: the hostname) (default "testhost")\n' in text
    assert f"(default {default_node_id('testhost')})\n" in text
    assert "  -log-level value\n    \tlog level: debug, info, warn, error or fatal (default INFO)\n" in text
    assert "  -tls-required\n    \trequire TLS for clients: false, true or tcp-https\n" in text
    assert "  -version\n    \tprint version string\n" in text


# -- the config file -----------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "nsqd.toml"
    path.write_text(text)
    return str(path)


def test_config_file_values_and_precedence(tmp_path: Path) -> None:
    config = load_toml(
        write(
            tmp_path,
            """
            id = 7
            mem_queue_size = 5
            max_msg_size = 100
            msg_timeout = "90s"
            max_req_timeout = 1500
            snappy = false
            log_level = "DEBUG"
            nsqlookupd_tcp_addresses = ["a:1", "b:2"]
            e2e_processing_latency_percentiles = [0.99, 0.5]
            queue_scan_dirty_percent = 1
            not_an_option = "ignored"
            """,
        )
    )
    opts = FLAGS.resolve(parse("--mem-queue-size=9"), config)
    assert opts.mem_queue_size == 9  # the command line wins over the file
    assert opts.node_id == 7  # config name "id"
    assert opts.max_msg_size == 100
    assert opts.msg_timeout == 90.0
    assert opts.max_req_timeout == 1.5  # an integer duration counts milliseconds
    assert opts.snappy is False
    assert opts.log_level == "debug"
    assert opts.lookupd_tcp_addresses == ["a:1", "b:2"]
    assert opts.e2e_processing_latency_percentiles == [0.99, 0.5]
    assert opts.queue_scan_dirty_percent == 1.0
    assert opts.max_body_size == Options().max_body_size  # neither: the default


def test_deprecated_alias_wins_over_the_config_file() -> None:
    assert options("--max-message-size=10", config={"max_msg_size": 20}).max_msg_size == 10


@pytest.mark.parametrize(
    ("key", "raw", "attr", "value"),
    [
        ("nsqlookupd_tcp_addresses", "a:1,b:2", "lookupd_tcp_addresses", ["a:1", "b:2"]),
        ("e2e_processing_latency_percentiles", "0.99, 0.5", "e2e_processing_latency_percentiles", [0.99, 0.5]),
        ("mem_queue_size", "12", "mem_queue_size", 12),
        ("snappy", "false", "snappy", False),
        ("deflate", 0, "deflate", False),
        ("tls_required", True, "tls_required", "true"),
        ("tls_required", "tcp-https", "tls_required", "tcp-https"),
        ("tls_min_version", "TLS1.2", "tls_min_version", "tls1.2"),
        ("sync_timeout", "0", "sync_timeout", 0.0),
    ],
)
def test_config_value_coercions(key: str, raw: object, attr: str, value: object) -> None:
    assert getattr(options(config={key: raw}), attr) == value


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("mem_queue_size", "ten", "Resolve failed to coerce value ten for mem_queue_size - invalid int value type str"),
        ("mem_queue_size", 1.5, "Resolve failed to coerce value 1.5 for mem_queue_size - invalid int value type float"),
        ("mem_queue_size", True, "Resolve failed to coerce value True for mem_queue_size - invalid int value type bool"),
        ("msg_timeout", "5", 'Resolve failed to coerce value 5 for msg_timeout - time: missing unit in duration "5"'),
        ("tcp_address", 4150, "Resolve failed to coerce value 4150 for tcp_address - invalid str value type int"),
        ("snappy", "yes", "Resolve failed to coerce value yes for snappy - parse error"),
        ("log_level", "loud", "failed parsing log_level loud"),
        ("tls_required", "maybe", "failed parsing tls_required maybe"),
    ],
)
def test_config_value_errors(key: str, raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        options(config={key: raw})
    assert str(err.value) == message


def test_load_toml_reports_a_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.toml")
    with pytest.raises(ConfigError) as err:
        load_toml(path)
    assert str(err.value) == f"failed to load config file {path} - open {path}: no such file or directory"


def test_load_toml_reports_bad_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "mem_queue_size = = 5\n")
    with pytest.raises(ConfigError, match=f"^failed to load config file {path} - "):
        load_toml(path)


# -- nsqd's derived defaults and start-up checks ------------------------------------------


def test_default_node_id_is_go_nsqds_hash_of_the_hostname() -> None:
    # crc32(md5("localhost")) % 1024, pinned so the formula cannot drift.
    assert default_node_id("localhost") == 1762046992 % 1024
    assert all(0 <= default_node_id(h) < 1024 for h in ("a", "b", "vm", "nsqd-1.example.com"))


def test_defaults_come_from_the_hostname() -> None:
    opts = options()
    assert opts.node_id == default_node_id("testhost")
    assert opts.broadcast_address == "testhost"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"node_id": 1024}, "--node-id must be [0,1024)"),
        ({"node_id": -1}, "--node-id must be [0,1024)"),
        ({"max_deflate_level": 0}, "--max-deflate-level must be [1,9]"),
        ({"max_deflate_level": 10}, "--max-deflate-level must be [1,9]"),
        ({"tls_required": "true"}, "cannot require TLS client connections without TLS key and cert"),
        ({"tls_client_auth_policy": "require"}, "cannot require TLS client connections without TLS key and cert"),
        ({"e2e_processing_latency_percentiles": [0.5, 1.5]}, "invalid E2E processing latency percentile: 1.5"),
        ({"e2e_processing_latency_percentiles": [0.0]}, "invalid E2E processing latency percentile: 0"),
    ],
)
def test_check_options_rejects_like_nsqd_new(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as err:
        check_options(Options(node_id=1).replace(**changes))
    assert str(err.value) == message


def test_check_options_accepts_the_defaults_and_edges() -> None:
    base = Options(node_id=0)
    assert check_options(base) == base
    assert check_options(base.replace(node_id=1023, max_deflate_level=9, e2e_processing_latency_percentiles=[1.0]))
    with_tls = base.replace(tls_cert="c.pem", tls_key="k.pem", tls_client_auth_policy="require")
    assert check_options(with_tls).tls_required == "true"
