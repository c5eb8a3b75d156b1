"""Building blocks of the search-space loader: YAML reading, typed readers, one searched parameter.

Everything here raises `Invalid(path, message)`; `sweep.space.load_space` catches it once and turns
it into a `SpaceError` that names the file. Nothing here knows about Ray.
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Iterable

import yaml

from trainables.errors import UserError, did_you_mean


class SpaceError(UserError):
    """A search-space file (or an override of it) is wrong; the message names file, key, value, fix."""


class Invalid(Exception):
    """Internal: raised with a key path; never escapes `load_space`."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


class FrozenDict(dict):
    """A read-only dict that still pickles (Ray pickles the searcher) and JSON-dumps as a dict."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("search-space values are read-only; build a new spec (load_space overrides)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

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


# --- YAML -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, plus: a key written twice is an error (PyYAML keeps the last silently)."""


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # '<<: *anchor' may legitimately repeat keys it merges
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", key_node.start_mark)
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {show(key)} appears twice (first on line {first + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(text: str, shown: str) -> Any:
    """Parse with safe_load semantics; syntax errors become SpaceError with line and column."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpaceError(f"{where}: YAML syntax error: {what}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: where it is, on one line
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise SpaceError(f"{shown}:{line}:{column}: YAML syntax error: character {exc.character!r} is not allowed "
                         f"in YAML") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{shown}: YAML syntax error: {' '.join(str(exc).split())}") from None


# --- typed readers ------------------------------------------------------------------------------


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


def number(value: Any, path: str, *, integer: bool = False, minimum: float | None = None,
           above: float | None = None) -> int | float:
    """int/float, or a numeric string ('1e-3': PyYAML reads exponents without a dot as strings)."""
    kind = "a whole number" if integer else "a number"
    parsed: Any = None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            pass
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        parsed = value
    if integer and isinstance(parsed, float) and math.isfinite(parsed) and parsed.is_integer():
        parsed = int(parsed)
    if parsed is None or (integer and not isinstance(parsed, numbers.Integral)):
        raise Invalid(path, f"{show(value)} is not {kind}")
    if not integer:
        try:
            parsed = float(parsed)
        except OverflowError:
            raise Invalid(path, f"{show(value)} is too large") from None
        if not math.isfinite(parsed):
            raise Invalid(path, f"{show(value)} is not a finite number")
    else:
        parsed = int(parsed)
    if minimum is not None and parsed < minimum:
        raise Invalid(path, f"{show(value)} is too small; allowed: >= {minimum}")
    if above is not None and parsed <= above:
        raise Invalid(path, f"{show(value)} is too small; allowed: > {above}")
    return parsed


_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLS:  # CLI overrides arrive as text
        return _BOOLS[value.strip().lower()]
    raise Invalid(path, f"{show(value)} is not true or false")


def string(value: Any, path: str, pattern: str | None = None, what: str = "") -> str:
    if not isinstance(value, str):
        raise Invalid(path, f"{show(value)} is not a string")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise Invalid(path, f"{show(value)} is not allowed; {what}")
    return value


def field_value(value: Any, path: str, typ: str) -> Any:
    """A value for a TrainConfig field of type name `typ` (bool/int/float/str), type-checked only."""
    if typ == "bool":
        return boolean(value, path)
    if typ == "int":
        return number(value, path, integer=True)
    if typ == "float":
        return number(value, path)
    return string(value, path)
