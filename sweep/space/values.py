"""Typed readers of YAML values, each raising `Invalid(path, message)`; read-only containers for the spec.

Values of TrainConfig's types go through TrainConfig's own coercion (`trainables.config.coerce`), so a
value means the same thing in a YAML file, a --set override and a trial config.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from trainables.config import TYPE_WORDS, coerce
from trainables.errors import ConfigError, did_you_mean

from .errors import Invalid


class FrozenDict(dict):
    """A read-only dict that still pickles (Ray pickles the searcher) and JSON-dumps as a dict."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("search-space values are read-only; build a new spec (load_space overrides)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    @classmethod
    def of(cls, keys, value) -> "FrozenDict":
        """dict.fromkeys, read-only (dict's own would write into the read-only instance)."""
        return cls(dict.fromkeys(keys, value))

    def __hash__(self):  # frozen dataclasses holding one stay hashable
        return hash(tuple(sorted(self.items(), key=lambda kv: str(kv[0]))))


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def join(path: str, key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def show(value: Any) -> str:
    """A value the way the user wrote it in YAML (true, null, 'text', 0.001), kept short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def mapping(value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
    allowed = list(allowed)
    if not isinstance(value, dict):
        raise Invalid(path, f"{show(value)} is not a mapping; expected keys: {', '.join(allowed)}")
    for key in value:
        if key not in allowed:
            raise Invalid(join(path, key), f"unknown key {show(key)}{did_you_mean(key, allowed)}")
    for key in required:
        if key not in value:
            raise Invalid(join(path, key), f"is required (in {path or 'the top level'})")
    return value


def field_value(value: Any, path: str, typ: str) -> Any:
    """A value of type name `typ` (bool/int/float/str), coerced the way TrainConfig coerces it."""
    try:
        return coerce(path, value, typ)
    except ConfigError:
        raise Invalid(path, f"{show(value)} is not {TYPE_WORDS[typ]}") from None


def number(value: Any, path: str, *, integer: bool = False, minimum: float | None = None,
           above: float | None = None) -> int | float:
    """int/float, or a numeric string ('1e-3': PyYAML reads exponents without a dot as strings)."""
    parsed = field_value(value, path, "int" if integer else "float")
    if minimum is not None and parsed < minimum:
        raise Invalid(path, f"{show(value)} is too small; allowed: >= {minimum}")
    if above is not None and parsed <= above:
        raise Invalid(path, f"{show(value)} is too small; allowed: > {above}")
    return parsed


def boolean(value: Any, path: str) -> bool:
    return field_value(value, path, "bool")


def string(value: Any, path: str, pattern: str | None = None, what: str = "") -> str:
    text = field_value(value, path, "str")
    if pattern is not None and not re.fullmatch(pattern, text):
        raise Invalid(path, f"{show(value)} is not allowed; {what}")
    return text
