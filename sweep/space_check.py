"""Cross-checks of a search space against TrainConfig: conditions, value ranges, enqueued configs.

The idea: a space that loads must never produce a trial config TrainConfig rejects. TrainConfig's
rules are per key or between two keys (warmup_epochs < epochs, pretrained needs a pretrained model,
nesterov needs sgd), and monotone in numeric values, so checking every choice and both ends of every
range, alone and in pairs, inside a consistent trial (conditions honoured), covers them.
"""
from __future__ import annotations

import re
from dataclasses import replace
from itertools import combinations
from typing import Any

from trainables.config import TrainConfig
from trainables.errors import ConfigError, did_you_mean

from .space_param import Param
from .space_schema import FrozenDict, Invalid, field_value, freeze, mapping, show

_MISSING = object()


def resolve_conditions(params: dict[str, Param], raw: dict, fixed: dict, types: dict) -> tuple[Param, ...]:
    """Parse every `when:` and return the params parents-first (YAML order otherwise)."""
    resolved = {}
    for name, param in params.items():
        when = raw[name].get("when")
        resolved[name] = param if when is None else replace(param, when=_parse_when(name, when, params, fixed, types))
    return _parents_first(resolved)


def _parse_when(name: str, raw: Any, params: dict, fixed: dict, types: dict) -> FrozenDict:
    path = f"params.{name}.when"
    if not isinstance(raw, dict) or not raw:
        raise Invalid(path, f"{show(raw)} is not allowed; write e.g. {{scheduler: step}} "
                            f"or {{scheduler: [step, cosine]}}")
    out = {}
    for parent, want in raw.items():
        where = f"{path}.{parent}"
        if parent == name:
            raise Invalid(where, f"{name} cannot depend on itself")
        if parent in params:
            if params[parent].type != "choice":
                raise Invalid(where, f"{parent} is a {params[parent].type} parameter; conditions can only test "
                                     f"choice parameters or fixed keys")
        elif parent not in fixed:
            known = "; it is a TrainConfig key: put it under fixed: or params:" if parent in types else \
                did_you_mean(parent, [*params, *fixed])
            raise Invalid(where, f"{show(parent)} is neither a searched parameter nor a fixed key{known}")
        items = want if isinstance(want, list) else [want]
        if not items:
            raise Invalid(where, "[] never holds; give at least one value")
        values = tuple(field_value(v, where, types[parent]) for v in items)
        if parent in params:
            for v, item in zip(values, items):
                if v not in params[parent].values:
                    raise Invalid(where, f"{show(item)} is not a value {parent} can take; it takes "
                                         f"{', '.join(show(x) for x in params[parent].values)}")
        out[parent] = values
    return FrozenDict(out)


def _parents_first(params: dict[str, Param]) -> tuple[Param, ...]:
    ordered: list[Param] = []
    pending = list(params)
    while pending:  # each round places the first param (in YAML order) whose parents are placed
        placed = {p.name for p in ordered}
        ready = next((n for n in pending if all(k in placed or k not in params for k in params[n].when)), None)
        if ready is None:
            cycle = _cycle(params, pending)
            raise Invalid(f"params.{cycle[0]}.when", f"conditions form a cycle: {' -> '.join(cycle)}")
        ordered.append(params[ready])
        pending.remove(ready)
    return tuple(ordered)


def _cycle(params: dict[str, Param], pending: list[str]) -> list[str]:
    start, seen = pending[0], []
    node = start
    while node not in seen:
        seen.append(node)
        node = next(p for p in params[node].when if p in params and p in pending)
    return seen[seen.index(node):] + [node]


def complete(fixed: dict, params: tuple[Param, ...], pinned: dict) -> dict | None:
    """A trial's values with `pinned` params set: parents switched on as needed, others at a
    representative value (first choice, low end), inactive ones left out. None if impossible."""
    by_name = {p.name: p for p in params}
    want = dict(pinned)
    stack = list(pinned)
    while stack:
        for parent, allowed in by_name[stack.pop()].when.items():
            have = fixed[parent] if parent in fixed else want.get(parent, _MISSING)
            if have is _MISSING:
                want[parent] = allowed[0]
                stack.append(parent)
            elif have not in allowed:
                return None
    values = dict(fixed)
    for p in params:
        if p.active(values):
            values[p.name] = want.get(p.name, p.endpoints()[0])
        elif p.name in want:
            return None
    return values


def config_error(values: dict) -> str | None:
    try:
        TrainConfig.from_dict(values)
    except ConfigError as exc:
        return str(exc)
    return None


def blame(message: str, names) -> str | None:
    """The key a ConfigError message mentions first, among `names`."""
    found = [(m.start(), n) for n in names for m in [re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message)] if m]
    return min(found)[1] if found else None


def check_values(fixed: dict, params: tuple[Param, ...]) -> None:
    base = complete(fixed, params, {})
    error = config_error(base)
    if error:
        name = blame(error, [*fixed, *(p.name for p in params)])
        path = f"fixed.{name}" if name in fixed else f"params.{name}" if name else "fixed"
        raise Invalid(path, _with_value(base.get(name), _strip(error, name)))
    points = [(p, i, v) for p in params for i, v in enumerate(p.endpoints())]
    for p, i, v in points:
        values = complete(fixed, params, {p.name: v})
        error = values is not None and config_error(values)
        if error:
            raise Invalid(p.endpoint_path(i), _with_value(v, _strip(error, p.name)))
    for (a, _, va), (b, _, vb) in combinations(points, 2):
        if a is b:
            continue
        values = complete(fixed, params, {a.name: va, b.name: vb})
        error = values is not None and config_error(values)
        if error:
            raise Invalid(f"params.{b.name}", f"{b.name}={show(vb)} together with {a.name}={show(va)} "
                                             f"is not a valid config: {error}")


def _strip(message: str, name) -> str:
    return re.sub(rf"^config key '{re.escape(str(name))}': ", "", message)


def _with_value(value, message: str) -> str:
    """Messages name the bad value; TrainConfig's usually do already."""
    return message if value is None or str(value) in message or show(value) in message else \
        f"{show(value)} is not allowed here: {message}"


def check_enqueue(raw: Any, fixed: dict, params: tuple[Param, ...], types: dict) -> tuple[FrozenDict, ...]:
    """Known-good configs to evaluate first; returned with only their searched values, coerced."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise Invalid("enqueue", f"{show(raw)} is not a list of configs; write e.g. - {{lr: 0.1, batch_size: 128}}")
    by_name = {p.name: p for p in params}
    out = []
    for i, entry in enumerate(raw):
        path = f"enqueue[{i}]"
        mapping(entry, path, [*by_name, *fixed])
        if not entry:
            raise Invalid(path, "{} is empty; give at least one searched value")
        chosen = {}
        for key, item in entry.items():
            value = field_value(item, f"{path}.{key}", types[key])
            if key in fixed:
                if value != fixed[key]:
                    raise Invalid(f"{path}.{key}", f"{show(item)} differs from fixed.{key} ({show(fixed[key])}); "
                                                   f"enqueued configs can only choose searched values")
                continue
            param = by_name[key]
            if param.type in ("int", "logint") and isinstance(value, float) and value.is_integer():
                value = int(value)
            if not param.contains(value):
                step = f" step {param.step}" if param.step else ""
                allowed = (", ".join(show(v) for v in param.values) if param.type == "choice"
                           else f"[{show(param.low)}, {show(param.high)}]{step}")
                raise Invalid(f"{path}.{key}", f"{show(item)} is outside params.{key}: {allowed}")
            chosen[key] = value
        known = {**fixed, **chosen}
        for key in chosen:
            for parent, allowed in by_name[key].when.items():
                if known.get(parent, _MISSING) not in allowed:
                    got = f"has {parent}={show(known[parent])}" if parent in known else f"does not set {parent}"
                    raise Invalid(f"{path}.{key}", f"{key} is searched only when {parent} is "
                                                   f"{' or '.join(show(a) for a in allowed)}, but this entry {got}")
        values = complete(fixed, params, chosen)
        error = config_error(values) if values is not None else "its conditions contradict each other"
        if error:
            raise Invalid(path, f"not a valid config: {error}")
        out.append(freeze({p.name: chosen[p.name] for p in params if p.name in chosen}))
    return tuple(out)
