"""`when:` conditions: parsing them, ordering params parents-first, and completing a partial trial."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from trainables.errors import did_you_mean

from .errors import Invalid
from .params import Param
from .values import FrozenDict, field_value, show

MISSING = object()


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
            have = fixed[parent] if parent in fixed else want.get(parent, MISSING)
            if have is MISSING:
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


