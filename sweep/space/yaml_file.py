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
        where = f"{shown}:{_line_col(text, mark.index)}" if mark else shown
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpaceError(f"{where}: YAML syntax error: {what}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: where it is, on one line
        raise SpaceError(f"{shown}:{_line_col(text, exc.position)}: YAML syntax error: character "
                         f"{_char(exc.character)} is not allowed in YAML") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{shown}: YAML syntax error: {' '.join(str(exc).split())}") from None


def _char(c) -> str:
    """PyYAML's ReaderError gives the character's code point (an int) for text, the byte for undecodable input."""
    return f"U+{c:04X}" if isinstance(c, int) else repr(c)


def _line_col(text: str, index: int) -> str:
    """LINE:COLUMN of a character, lines ending at newlines as an editor shows them (YAML's own marks also break
    lines at \\x85, \\u2028 and \\u2029, so its line numbers could run past the file's last line)."""
    line, start = text.count("\n", 0, index) + 1, text.rfind("\n", 0, index)
    return f"{line}:{index - start}"
