"""Go's ``flag`` package and nsqd's ``--config`` resolution, driven by a flag table.

Scripts written for the Go daemons must run unchanged, so the command line is
read exactly as Go's ``flag.FlagSet`` (``ExitOnError``) reads it:

* ``-name`` and ``--name`` are the same; ``-name=value`` or ``-name value``,
  except for booleans, which take ``-name`` (true) or ``-name=<bool>`` only,
  with ``strconv.ParseBool``'s spellings (1 t T TRUE true True, 0 f F ...).
* Parsing stops at ``--`` or at the first argument that is not a flag.
* Integers are read as Go literals (``0x1f``, ``0o17``, ``017``, ``1_000``),
  durations in Go's syntax (``250ms``, ``1m30s``, ``1.5h``); repeatable flags
  append, and a float list also splits on commas and is kept in descending
  order (nsq's ``app.FloatArray``).
* Errors print Go's message, then the usage, and exit 2; ``-h``, ``-help`` and
  ``--help`` print the usage and exit 0 (``ExitOnError`` since Go 1.15).
  Usage is ``PrintDefaults``: flags sorted by name, ``  -name type``, the help
  on the next line after four spaces and a tab, then ``(default ...)`` unless
  the default is the type's zero value.

``resolve`` then merges the ``--config`` TOML file the way nsqd does with
``mreiferson/go-options``: a flag given on the command line wins, then a
deprecated alias of it, then the config file, then the default.  Config keys
that name no option are ignored, as nsqd ignores them; an integer given for a
duration counts milliseconds.  Where go-options misreads a value (it takes the
integer 0 as *true* for a boolean, and formats a number given for a string as
``%!s(int64=5)``) this module reads the integer as C does and rejects the
number, and a number is accepted where a float is due.

The value syntaxes themselves (durations, integers, ...) live in ``govalues``;
the duration functions are re-exported here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TextIO, TypeVar

from broker.apps import version_string
from broker.apps.govalues import (
    format_go_duration,
    format_go_duration_ns,
    go_float_text,
    go_quote,
    parse_go_bool,
    parse_go_duration,
    parse_go_duration_ns,
    parse_go_float,
    parse_go_int,
)
from broker.runtime.log import StderrLogger, parse_log_level

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "LOG_LEVEL",
    "ConfigError",
    "Custom",
    "FlagError",
    "FlagLike",
    "FlagSet",
    "HelpRequested",
    "Parsed",
    "check_without_effect",
    "format_go_duration",
    "format_go_duration_ns",
    "load_toml",
    "parse_go_bool",
    "parse_go_duration",
    "parse_go_duration_ns",
    "parse_go_float",
    "parse_go_int",
]

# -- the flag set ---------------------------------------------------------------


class FlagLike(Protocol):
    """A row of a flag table (``broker.nsqd.options.FlagSpec`` is one)."""

    @property
    def flag(self) -> str: ...
    @property
    def attr(self) -> str: ...  # "" for a flag that is not an option (-version, -config)
    @property
    def kind(self) -> str: ...
    @property
    def help(self) -> str: ...
    @property
    def cfg_name(self) -> str: ...
    @property
    def deprecated_aliases(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Custom:
    """A flag read by its own function, as a Go ``flag.Var`` is by its ``Set``.

    ``parse`` raises ValueError with the text Go prints after the flag's name;
    ``show_default`` gives usage's ``(default ...)`` text, or None to omit it.
    """

    parse: Callable[[str], object]
    type_name: str = "value"
    is_bool: bool = False  # like a Go IsBoolFlag: never consumes the next argument
    show_default: Callable[[object], str | None] = lambda v: str(v) if v else None


LOG_LEVEL = Custom(parse=parse_log_level, show_default=lambda v: str(v).upper())


class FlagError(Exception):
    """A bad command line; ``str()`` is Go's message."""


class HelpRequested(Exception):
    """``-h``, ``-help`` or ``--help`` was given."""


class ConfigError(Exception):
    """The config file could not be read, or one of its values not used."""


@dataclass(slots=True)
class Parsed:
    """What the command line set: values by the name given, leftover arguments."""

    values: dict[str, object] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    deprecated: list[tuple[str, str]] = field(default_factory=list)  # (alias used, flag)

    def is_set(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: object = None) -> object:
        return self.values.get(name, default)


_ZERO: dict[str, object] = {"str": "", "int": 0, "bool": False, "duration": 0.0, "float": 0.0}
_TYPE_NAME = {"str": "string", "int": "int", "bool": "", "duration": "duration", "float": "float"}

T = TypeVar("T", bound="DataclassInstance")


class FlagSet(Generic[T]):
    """The flags of one program; ``defaults`` is its options object before any flag."""

    def __init__(
        self,
        name: str,
        specs: Iterable[FlagLike],
        defaults: T,
        custom: Mapping[str, Custom] | None = None,
    ) -> None:
        self.name = name
        self._defaults = defaults
        self._specs = {s.flag: s for s in specs}
        self._alias_of = {a: s.flag for s in self._specs.values() for a in s.deprecated_aliases}
        self._custom = dict(custom or {})

    # -- the command line -------------------------------------------------------

    def parse(self, argv: Sequence[str]) -> Parsed:
        """Read ``argv`` (without the program name); raises FlagError or HelpRequested."""
        out = Parsed()
        i = 0
        while i < len(argv):
            arg = argv[i]
            if len(arg) < 2 or arg[0] != "-":
                break
            i += 1
            if arg == "--":
                break
            name = arg[2:] if arg[1] == "-" else arg[1:]
            if not name or name[0] in "-=":
                raise FlagError(f"bad flag syntax: {arg}")
            value: str | None = None
            if "=" in name:
                name, value = name.split("=", 1)
            spec = self._specs.get(self._alias_of.get(name, name))
            if spec is None:
                if name in ("h", "help"):
                    raise HelpRequested
                raise FlagError(f"flag provided but not defined: -{name}")
            if self._is_bool(spec):
                text = "true" if value is None else value
                try:
                    parsed = self._read(spec, text)
                except ValueError as exc:
                    raise FlagError(f"invalid boolean value {go_quote(text)} for -{name}: {exc}") from None
            else:
                if value is None:
                    if i == len(argv):
                        raise FlagError(f"flag needs an argument: -{name}")
                    value = argv[i]
                    i += 1
                try:
                    parsed = self._read(spec, value)
                except ValueError as exc:
                    raise FlagError(f"invalid value {go_quote(value)} for flag -{name}: {exc}") from None
            self._store(out.values, name, spec, parsed)
        out.args = list(argv[i:])
        out.deprecated = [
            (name, self._alias_of[name])
            for name in out.values
            if name in self._alias_of and self._alias_of[name] not in out.values
        ]
        return out

    def parse_or_exit(self, argv: Sequence[str], out: TextIO | None = None) -> Parsed:
        """``parse``, handling errors as Go's ``ExitOnError`` does (usage, exit 2 or 0).

        A leftover argument is an error too: Go's daemons take none, and would
        silently drop every flag after it.
        """
        out = out if out is not None else sys.stderr
        try:
            parsed = self.parse(argv)
        except HelpRequested:
            out.write(self.usage())
            raise SystemExit(0) from None
        except FlagError as exc:
            out.write(f"{exc}\n{self.usage()}")
            raise SystemExit(2) from None
        if parsed.args:
            out.write(f"unexpected argument: {parsed.args[0]}\n{self.usage()}")
            raise SystemExit(2)
        return parsed

    def _is_bool(self, spec: FlagLike) -> bool:
        custom = self._custom.get(spec.flag)
        return custom.is_bool if custom is not None else spec.kind == "bool"

    def _read(self, spec: FlagLike, text: str) -> object:
        custom = self._custom.get(spec.flag)
        if custom is not None:
            return custom.parse(text)
        kind = spec.kind
        if kind in ("str", "str_list"):
            return text
        if kind == "int":
            return parse_go_int(text)
        if kind == "bool":
            return parse_go_bool(text)
        if kind == "duration":
            try:
                return parse_go_duration(text)
            except ValueError:
                raise ValueError("parse error") from None
        if kind == "float":
            return parse_go_float(text)
        if kind == "float_list":
            return [parse_go_float(part) for part in text.split(",")]
        raise AssertionError(f"flag -{spec.flag}: unknown kind {kind!r}")

    def _store(self, values: dict[str, object], name: str, spec: FlagLike, value: object) -> None:
        if spec.kind == "str_list":
            values[name] = [*_as_list(values.get(name)), value]
        elif spec.kind == "float_list":
            merged = [*_as_list(values.get(name)), *_as_list(value)]
            values[name] = sorted(merged, key=_as_float, reverse=True)
        else:
            values[name] = value

    # -- usage ------------------------------------------------------------------

    def usage(self) -> str:
        lines = [f"Usage of {self.name}:"]
        for name in sorted(self._specs):
            spec = self._specs[name]
            type_name, help_text = self._unquote_usage(spec)
            line = f"  -{name}" + (f" {type_name}" if type_name else "")
            line += "\t" if len(line) <= 4 else "\n    \t"
            line += help_text.replace("\n", "\n    \t")
            default = self._default_text(spec)
            if default is not None:
                line += f" (default {default})"
            lines.append(line)
        return "\n".join(lines) + "\n"

    def _unquote_usage(self, spec: FlagLike) -> tuple[str, str]:
        # As flag.UnquoteUsage: a `quoted` word in the help names the value.
        m = re.search(r"`([^`]*)`", spec.help)
        if m:
            return m.group(1), spec.help[: m.start()] + m.group(1) + spec.help[m.end() :]
        custom = self._custom.get(spec.flag)
        if custom is not None:
            return ("" if custom.is_bool else custom.type_name), spec.help
        return _TYPE_NAME.get(spec.kind, "value"), spec.help

    @property
    def defaults(self) -> T:
        """The options before any flag."""
        return self._defaults

    @property
    def specs(self) -> tuple[FlagLike, ...]:
        """The flags, in table order."""
        return tuple(self._specs.values())

    def default_of(self, spec: FlagLike) -> object:
        if spec.attr:
            return getattr(self._defaults, spec.attr)
        return _ZERO.get(spec.kind, [])

    def without_effect(self, opts: T) -> list[tuple[FlagLike, str]]:
        """The flags marked ``implemented=False`` that ``opts`` sets away from their defaults, each with its value as text."""
        out: list[tuple[FlagLike, str]] = []
        for spec in self._specs.values():
            if not spec.attr or getattr(spec, "implemented", True):
                continue
            value = getattr(opts, spec.attr)
            if value == self.default_of(spec):
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, list):
                text = ",".join(map(str, value))
            elif spec.kind == "duration":
                text = format_go_duration(_as_float(value))
            else:
                text = str(value)
            out.append((spec, text))
        return out

    def _default_text(self, spec: FlagLike) -> str | None:
        value = self.default_of(spec)
        custom = self._custom.get(spec.flag)
        if custom is not None:
            return custom.show_default(value)
        if not value:
            return None
        if spec.kind == "str":
            return go_quote(str(value))
        if spec.kind == "bool":
            return "true"
        if spec.kind == "duration":
            return format_go_duration(_as_float(value))
        if spec.kind == "float":
            return go_float_text(_as_float(value))
        if spec.kind in ("str_list", "float_list"):
            return ",".join(map(str, _as_list(value)))
        return str(value)

    # -- command line + config file + defaults -------------------------------------

    def resolve(self, parsed: Parsed, config: Mapping[str, object]) -> T:
        """The options: command line, then deprecated alias, then config, then default."""
        changes: dict[str, object] = {}
        for spec in self._specs.values():
            if not spec.attr:
                continue
            given = [n for n in (spec.flag, *spec.deprecated_aliases) if n in parsed.values]
            if given:
                changes[spec.attr] = parsed.values[given[0]]
            elif spec.cfg_name in config:
                changes[spec.attr] = self._from_config(spec, config[spec.cfg_name])
        return dataclasses.replace(self._defaults, **changes)

    def _from_config(self, spec: FlagLike, raw: object) -> object:
        custom = self._custom.get(spec.flag)
        if custom is not None:
            text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
            try:
                return custom.parse(text)
            except ValueError:
                raise ConfigError(f"failed parsing {spec.cfg_name} {text}") from None
        try:
            return _coerce(spec.kind, raw)
        except ValueError as exc:
            raise ConfigError(
                f"Resolve failed to coerce value {raw} for {spec.cfg_name} - {exc}"
            ) from None


def _coerce(kind: str, raw: object) -> object:
    """A TOML value as the option of ``kind`` (go-options' ``coerce``)."""
    is_int = isinstance(raw, int) and not isinstance(raw, bool)
    if kind == "str" and isinstance(raw, str):
        return raw
    if kind == "int":
        if is_int:
            return raw
        if isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]+", raw):
            return int(raw)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            return parse_go_bool(raw)
        if is_int:
            return raw != 0
    if kind == "float":
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            return parse_go_float(raw)
    if kind == "duration":
        if isinstance(raw, str):
            return parse_go_duration(raw)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw / 1000  # an integer counts milliseconds
    if kind == "str_list":
        if isinstance(raw, str):
            return raw.split(",")
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            return list(raw)
    if kind == "float_list":
        items = raw.split(",") if isinstance(raw, str) else raw
        if isinstance(items, list):
            return [_coerce("float", x.strip() if isinstance(x, str) else x) for x in items]
    raise ValueError(f"invalid {kind} value type {type(raw).__name__}")


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    assert isinstance(value, list)
    return value


def _as_float(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


def load_toml(path: str) -> dict[str, object]:
    """The ``--config`` file's table; ConfigError says why it could not be read."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ConfigError(f"failed to load config file {path} - open {path}: {why}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"failed to load config file {path} - {exc}") from None


def check_without_effect(
    flags: FlagSet[T], opts: T, security: Collection[str], warn: Callable[[str], None]
) -> None:
    """Fail closed on a security flag that has no effect yet; warn once for each other one.

    Driven by the flag table's ``implemented`` markers: a flag set to its
    default is never mentioned, and a flag whose marker says implemented is
    never refused.  Raises ValueError naming the first security flag set.
    """
    ignored = flags.without_effect(opts)
    for spec, text in ignored:
        if spec.flag in security:
            raise ValueError(
                f"--{spec.flag}={text} is not implemented yet; refusing to start rather than run without it"
                f" (leave --{spec.flag} unset)"
            )
    for spec, text in ignored:
        warn(f"--{spec.flag}={text} has no effect: not implemented yet")


class CommandLine(Generic[T]):
    """A daemon's command line resolved as Go's ``main.go`` does it, or its exit status.

    ``--version`` prints and exits 0; flag errors exit 2 from inside
    ``parse_or_exit``; a bad ``--config`` is one FATAL line (``fatal``, on a
    logger with the daemon's fixed ``[name] `` prefix) and exit 1.
    """

    def __init__(self, app: str, flags: FlagSet[T], argv: Sequence[str]) -> None:
        self._startup = StderrLogger(f"[{app}] ")
        self.opts: T | None = None
        self.status = 0
        parsed = flags.parse_or_exit(argv)
        self.deprecated = parsed.deprecated  # (alias, flag) pairs the command line used
        if parsed.get("version"):
            print(version_string(app))
            return
        try:
            config_path = str(parsed.get("config", ""))
            config = load_toml(config_path) if config_path else {}
            self.opts = flags.resolve(parsed, config)
        except ConfigError as exc:
            self.status = self.fatal(str(exc))

    def fatal(self, msg: str) -> int:
        self._startup.log("FATAL", msg)
        return 1
