"""The example ``--config`` files in ``deploy/``, written from the flag tables.

    python -m broker.apps.example_config nsqd > deploy/nsqd.toml
    python -m broker.apps.example_config nsqlookupd > deploy/nsqlookupd.toml

Every option of the daemon appears under its config-file name with its
default value and its help as a comment, in table order, so the file is a
complete reference that changes nothing when used as it is.  Two nsqd
defaults are derived from the host (``id`` from a hash of the hostname,
``broadcast_address`` the hostname itself): they are commented out, since a
value copied to every host would give them all the same one.  A test keeps the
files equal to what this module writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

from broker.apps.govalues import format_go_duration, go_float_text
from broker.lookupd.options import FLAGS as LOOKUPD_FLAGS
from broker.lookupd.options import LookupdOptions
from broker.nsqd.options import FLAGS as NSQD_FLAGS
from broker.nsqd.options import SECURITY_FLAGS, FlagSpec, Options

__all__ = ["render", "toml_value"]

_HOST_DERIVED = {"node_id": "a hash of the hostname, crc32(md5(hostname)) % 1024", "broadcast_address": "the hostname"}

_HEADERS = {
    "nsqd": (
        "nsqd: every option, with its default (Go nsqd 1.3.0's, plus the additive ones marked \"beyond nsqd\").\n"
        "Use with --config=nsqd.toml; a flag on the command line wins over this file.\n"
        "Durations are Go durations (\"250ms\", \"1m0s\"); an integer counts milliseconds.\n"
        "Written by `python -m broker.apps.example_config nsqd` from broker/nsqd/options.py."
    ),
    "nsqlookupd": (
        "nsqlookupd: every option, with its default (Go nsqlookupd 1.3.0's).\n"
        "Use with --config=nsqlookupd.toml; a flag on the command line wins over this file.\n"
        "Written by `python -m broker.apps.example_config nsqlookupd` from broker/lookupd/options.py."
    ),
}


def toml_value(kind: str, value: object) -> str:
    """``value`` of an option of ``kind`` as TOML that ``--config`` reads back to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "duration":
        assert isinstance(value, int | float)
        return json.dumps(format_go_duration(float(value)), ensure_ascii=False)
    if kind == "float":
        assert isinstance(value, int | float)
        text = go_float_text(float(value))
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value("float" if kind == "float_list" else "str", v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def _lines(specs: Iterable[FlagSpec], defaults: object, host_derived: dict[str, str]) -> list[str]:
    out: list[str] = []
    for spec in specs:
        out.append("")
        out.append(f"# --{spec.flag}: {spec.help}")
        if not spec.implemented:
            what = "refused at start" if spec.flag in SECURITY_FLAGS else "a warning at start"
            out.append(f"# (accepted, no effect yet: a value other than this default is {what})")
        if spec.attr in host_derived:
            out.append(f"# default: {host_derived[spec.attr]}")
            out.append(f"# {spec.cfg_name} = ...")
            continue
        out.append(f"{spec.cfg_name} = {toml_value(spec.kind, getattr(defaults, spec.attr))}")
    return out


def render(app: str) -> str:
    """The example config file of ``app`` (``nsqd`` or ``nsqlookupd``)."""
    if app == "nsqd":
        body = _lines(NSQD_FLAGS, Options(), _HOST_DERIVED)
    elif app == "nsqlookupd":
        body = _lines(LOOKUPD_FLAGS, LookupdOptions(), {"broadcast_address": "the hostname"})
    else:
        raise ValueError(f"no example config for {app!r} (nsqd, nsqlookupd)")
    header = [f"# {line}" if line else "#" for line in _HEADERS[app].split("\n")]
    return "\n".join([*header, *body]) + "\n"


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in _HEADERS:
        sys.stderr.write("usage: python -m broker.apps.example_config nsqd|nsqlookupd\n")
        sys.exit(2)
    sys.stdout.write(render(sys.argv[1]))


if __name__ == "__main__":
    main()
