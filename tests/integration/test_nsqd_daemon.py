"""The nsqd daemon as a process: its command line, its start-up, its exit."""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.apps import version_string
from tests.integration.conftest import ROOT, Daemon, run_nsqd

pytestmark = pytest.mark.integration

STAMP = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}"
CONNECT_BOUND = 10.0  # seconds a loopback connect may take before the test fails


# -- runs that exit by themselves ------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-version", "--version=true"])
def test_version_prints_and_exits_0(flag: str) -> None:
    done = run_nsqd(flag, "--config=/no/such/file.toml")  # checked before the config is read
    assert done.returncode == 0
    assert done.stdout == version_string("nsqd") + "\n"
    # the form client harnesses parse: NAME vX.Y.Z (built w/TOKEN), the NSQ version, a lowercase token
    assert done.stdout == f"nsqd v1.3.0 (built w/{platform.python_implementation().lower()}{platform.python_version()})\n"
    assert done.stderr == ""


@pytest.mark.parametrize("flag", ["-h", "-help", "--help"])
def test_help_prints_usage_to_stderr_and_exits_0(flag: str) -> None:
    done = run_nsqd(flag)
    assert done.returncode == 0
    assert done.stdout == ""
    assert done.stderr.startswith("Usage of nsqd:\n  -auth-http-address value\n")
    assert "  -tcp-address string\n" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--foo"], "flag provided but not defined: -foo"),
        (["--mem-queue-size=x"], 'invalid value "x" for flag -mem-queue-size: parse error'),
        (["--msg-timeout", "60"], 'invalid value "60" for flag -msg-timeout: parse error'),
        (["--log-level=loud"], "invalid value \"loud\" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)"),
        (["stray"], "unexpected argument: stray"),
    ],
)
def test_bad_command_line_prints_go_message_then_usage_and_exits_2(args: list[str], message: str) -> None:
    done = run_nsqd(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    first, second = done.stderr.splitlines()[:2]
    assert first == message
    assert second == "Usage of nsqd:"


def fatal_line(stderr: str) -> str:
    [line] = [ln for ln in stderr.splitlines() if " FATAL: " in ln]
    assert re.match(rf"\[nsqd\] {STAMP} FATAL: ", line), line
    return line.split(" FATAL: ", 1)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-id=1024"], "failed to instantiate nsqd - --node-id must be [0,1024)"),
        (["--max-deflate-level=0"], "failed to instantiate nsqd - --max-deflate-level must be [1,9]"),
        (["--tls-required"], "failed to instantiate nsqd - cannot require TLS client connections without TLS key and cert"),
        # nsqd 1.3.0 takes whatever is not host:port for a Unix socket's path ("4150" too: util.TypeOfAddr)
        (["--tcp-address=127.0.0.1:99999"], "failed to instantiate nsqd - listen (127.0.0.1:99999) failed - listen tcp: address 99999: invalid port"),
        (
            ["--tcp-address=/nonexistent-dir/nsqd.sock"],
            "failed to instantiate nsqd - listen (/nonexistent-dir/nsqd.sock) failed"
            " - listen unix /nonexistent-dir/nsqd.sock: bind: no such file or directory",
        ),
        (
            [f"--http-address=/tmp/{'x' * 110}.sock"],
            f"failed to instantiate nsqd - listen (/tmp/{'x' * 110}.sock) failed - listen unix /tmp/{'x' * 110}.sock: bind:"
            " invalid argument (a socket path is at most 107 bytes)",
        ),
    ],
)
def test_invalid_configuration_is_fatal_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={tmp_path}", *args)
    assert done.returncode == 1
    assert fatal_line(done.stderr) == message


def test_missing_data_path_is_fatal(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={missing}")
    assert done.returncode == 1
    assert fatal_line(done.stderr) == (
        f"failed to instantiate nsqd - failed to lock data-path: open {missing}: no such file or directory"
    )


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir(mode=0o500)
        return d
    if not Path("/sys/kernel").is_dir():  # root writes anywhere but sysfs
        pytest.skip("root, and no /sys/kernel to stand for an unwritable directory")
    return Path("/sys/kernel")


def test_a_data_path_that_is_a_regular_file_is_fatal_before_listening(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={path}")
    assert done.returncode == 1
    assert fatal_line(done.stderr) == (
        f"failed to load metadata - failed to read metadata from {path}/nsqd.dat - open {path}/nsqd.dat: not a directory"
    )
    assert "listening" not in done.stderr


def test_an_unwritable_data_path_is_fatal_before_listening(tmp_path: Path) -> None:
    path = _unwritable_dir(tmp_path)
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={path}")
    assert done.returncode == 1
    assert re.fullmatch(
        rf"failed to persist metadata - open {re.escape(str(path))}/nsqd\.dat\.\d+\.tmp: permission denied",
        fatal_line(done.stderr),
    )
    assert "listening" not in done.stderr
    assert not list(path.glob("nsqd.dat.*.tmp"))


def test_missing_config_file_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    done = run_nsqd(f"--config={path}", f"--data-path={tmp_path}")
    assert done.returncode == 1
    assert fatal_line(done.stderr) == f"failed to load config file {path} - open {path}: no such file or directory"


def test_port_in_use_is_fatal_exit_1(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        addr = f"127.0.0.1:{blocker.getsockname()[1]}"
        done = run_nsqd(f"--tcp-address={addr}", "--http-address=127.0.0.1:0", f"--data-path={tmp_path}")
    assert done.returncode == 1
    assert fatal_line(done.stderr) == (
        f"failed to instantiate nsqd - listen ({addr}) failed - listen tcp {addr}: bind: address already in use"
    )


# -- a running daemon ---------------------------------------------------------------


def test_daemon_starts_logs_like_nsqd_and_accepts_connections(nsqd: Daemon) -> None:
    for proto in ("TCP", "HTTP"):
        host, port = nsqd.addresses[proto]
        assert host == "127.0.0.1"
        assert port != 0
        with socket.create_connection((host, port), timeout=CONNECT_BOUND):
            pass
    lines = nsqd.stderr.splitlines()
    assert re.fullmatch(rf"\[nsqd\] {STAMP} INFO: {re.escape(version_string('nsqd'))}", lines[0])
    assert re.fullmatch(rf"\[nsqd\] {STAMP} INFO: ID: \d+", lines[1])
    assert "WARNING" not in nsqd.stderr  # the defaults set nothing that has no effect


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_gracefully_with_exit_0(nsqd: Daemon, sig: signal.Signals) -> None:
    tcp = "{}:{}".format(*nsqd.tcp_address)
    with socket.create_connection(nsqd.tcp_address, timeout=CONNECT_BOUND):
        nsqd.send_signal(sig)
        assert nsqd.wait() == 0
    assert f"INFO: TCP: closing {tcp}" in nsqd.stderr
    assert "Traceback" not in nsqd.stderr


def test_a_second_daemon_cannot_share_the_data_path(nsqd_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    nsqd_factory(data_path=shared)
    done = run_nsqd("--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--data-path={shared}")
    assert done.returncode == 1
    assert fatal_line(done.stderr) == (
        f"failed to instantiate nsqd - failed to lock data-path: cannot flock directory {shared}"
        " - resource temporarily unavailable (possibly in use by another instance of nsqd)"
    )


def test_config_file_applies_and_flags_win(nsqd_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    config = tmp_path / "nsqd.toml"
    config.write_text('log_prefix = "[from-config] "\nlog_level = "INFO"\nunknown_key = 1\n')
    from_config = nsqd_factory(f"--config={config}")
    assert from_config.stderr.splitlines()[0].startswith("[from-config] ")
    from_flag = nsqd_factory(f"--config={config}", "--log-prefix=[from-flag] ")
    assert from_flag.stderr.splitlines()[0].startswith("[from-flag] ")


def test_the_example_config_starts_nsqd_and_warns_about_nothing(nsqd_factory: Callable[..., Daemon]) -> None:
    daemon = nsqd_factory(f"--config={ROOT / 'deploy' / 'nsqd.toml'}")
    assert "WARNING" not in daemon.stderr and "FATAL" not in daemon.stderr
    assert daemon.stop(signal.SIGTERM) == 0


def test_deprecated_alias_is_accepted_with_a_warning(nsqd_factory: Callable[..., Daemon]) -> None:
    daemon = nsqd_factory("--max-message-size=2048")
    assert "WARNING: use of the --max-message-size command line flag is deprecated (use --max-msg-size)" in daemon.stderr


def test_http_listener_is_optional(nsqd_factory: Callable[..., Daemon]) -> None:
    daemon = nsqd_factory("--http-address=", protocols=("TCP",))
    assert daemon.stop(signal.SIGTERM) == 0
    assert "HTTP: listening" not in daemon.stderr
