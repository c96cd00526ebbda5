"""A TOML table read key by key, typed, so that keys nobody read can be reported as typos."""

from __future__ import annotations

from broker.apps.goflags import parse_go_duration
from nsqsim.dist import Dist

__all__ = ["ConfigError", "Table"]


class ConfigError(ValueError):
    """The configuration cannot be run; the message says where and why."""


class Table:
    """A TOML table read key by key, so that keys nobody read can be reported."""

    def __init__(self, raw: object, where: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        self._raw: dict[str, object] = raw
        self._where = where
        self._read: set[str] = set()

    def has_any(self) -> bool:
        return bool(self._raw)

    def raw(self, key: str) -> object:
        self._read.add(key)
        return self._raw.get(key)

    def done(self) -> None:
        unknown = sorted(set(self._raw) - self._read)
        if unknown:
            raise ConfigError(f"{self._where}: unknown keys {unknown}")

    def _fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self._where}: {key} must be {what}")

    def text(self, key: str, default: str) -> str:
        v = self.raw(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self._fail(key, "a string")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self.raw(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self._fail(key, "true or false")
        return v

    def integer(self, key: str, default: int) -> int:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._fail(key, "an integer")
        return v

    def number(self, key: str, default: float) -> float:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self._fail(key, "a number")
        return float(v)

    def seconds(self, key: str, default: float) -> float:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, str):
            try:
                return parse_go_duration(v)
            except ValueError:
                raise self._fail(key, 'seconds or a Go duration ("250ms")') from None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self._fail(key, 'seconds or a Go duration ("250ms")')
        return float(v)

    def dist(self, key: str, default: Dist) -> Dist:
        v = self.raw(key)
        if v is None:
            return default
        try:
            return Dist.parse(v)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self._where}: {key}: {exc}") from None

    def strings(self, key: str, default: list[str]) -> list[str]:
        v = self.raw(key)
        if v is None:
            return default
        if isinstance(v, str):
            return [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self._fail(key, "a string or a list of strings")
        return list(v)

    def mapping(self, key: str) -> dict[str, object]:
        v = self.raw(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise self._fail(key, "a table")
        return v

    def table(self, key: str) -> Table:
        return Table(self.raw(key), f"[{key}]")

    def tables(self, key: str) -> list[object]:
        v = self.raw(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self._fail(key, "an array of tables")
        return v
