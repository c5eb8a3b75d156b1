"""What changes a file's values before they are built: --set/flag overrides and the smoke: section.

Precedence, lowest first: the file, its smoke: section (with --smoke-test), explicit overrides. An
explicit command-line flag or --set therefore always wins, smoke mode or not.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping

from .errors import SpaceError
from .values import show, thaw


def given(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The overrides that were given: None means an unset CLI flag."""
    return {str(k): v for k, v in (overrides or {}).items() if v is not None}


def apply(raw: dict, overrides: Mapping[str, Any], shown: str) -> dict:
    """A copy of `raw` with each dotted key path ({"trials.num_samples": 8}) set."""
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        if not all(keys):
            raise SpaceError(f"{shown}: override {show(dotted)} is not a key path like trials.num_samples")
        node = raw
        for i, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SpaceError(f"{shown}: override {dotted}: {'.'.join(keys[:i + 1])} is {show(node)}, "
                                 f"not a mapping of keys")
        node[keys[-1]] = copy.deepcopy(value)
    return raw


def touches(overrides: Mapping[str, Any], where: str) -> bool:
    """Whether an override set the value at key path `where` (or a mapping above it)."""
    return any(where == k or where.startswith((k + ".", k + "[")) for k in overrides)


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`, key by key in mappings; anything else (a list, a value) replaced whole."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def smoke_form(spec) -> dict:
    """The YAML form of `spec` shrunk by its smoke: section (defaults filled in)."""
    return merge(spec.yaml_form(), thaw(spec.smoke))


# A scheduler's decisions happen within the smoke run's 2 epochs (ASHA's under its section's own name).
SMOKE_SCHEDULING = {"asha": {"asha": {"grace_period": 1}}, "median": {"trial_scheduler": {"grace_period": 1}},
                   "pbt": {"trial_scheduler": {"interval": 1}}, "pb2": {"trial_scheduler": {"interval": 1}}}


def smoke_defaults(fixed: dict, parts: dict, searched: tuple = (), scheduler=None) -> dict:
    """What --smoke-test does unless the smoke: section says otherwise: same code path, ~1 minute on a
    CPU; never more than the file itself asks for. (A searched subset stays searched: fixing it too would
    make the smoke variant, and so the file, fail to load.)"""
    trials = parts["trials"]
    small = {"epochs": min(fixed["epochs"], 2)}
    if "subset" not in searched:
        small["subset"] = min(fixed.get("subset") or 1000, 1000)
    return {"fixed": small, **SMOKE_SCHEDULING.get(scheduler.type if scheduler else "asha", {}),
            "trials": {"num_samples": min(trials.num_samples, 4), "max_concurrent": min(trials.max_concurrent, 2)},
            "retrain": {"epochs": 1, "seeds": [parts["retrain"].seeds[0]]}}


def holds(tree: Any, path: str) -> bool:
    """Whether the key path `path` (a.b[0].c) exists in `tree` (frozen mappings and tuples)."""
    for key in re.findall(r"[^.\[\]]+", path):
        if isinstance(tree, dict) and any(str(k) == key for k in tree):
            tree = next(v for k, v in tree.items() if str(k) == key)
        elif isinstance(tree, tuple) and key.isdigit() and int(key) < len(tree):
            tree = tree[int(key)]
        else:
            return False
    return True
