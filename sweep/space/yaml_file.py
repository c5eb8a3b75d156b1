"""YAML text -> Python values, with safe_load semantics, a duplicate key as an error, and errors as one line."""
from __future__ import annotations

from typing import Any

import yaml

from .errors import SpaceError
from .values import show


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
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                    key_node.start_mark) from None
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
