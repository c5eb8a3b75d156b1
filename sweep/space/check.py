"""Cross-checks of a search space against TrainConfig: value ranges in context, enqueued configs.

The idea: a space that loads must never produce a trial config TrainConfig rejects. TrainConfig's
rules are per key or between two keys (warmup_epochs < epochs, pretrained needs a pretrained model,
nesterov needs sgd), and monotone in numeric values, so checking every choice and both ends of every
range, alone and in pairs, inside a consistent trial (conditions honoured), covers them.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

from trainables.config import TrainConfig
from trainables.errors import ConfigError

from .conditions import MISSING, complete
from .errors import Invalid
from .params import Param
from .values import FrozenDict, field_value, freeze, mapping, show


def config_error(values: dict) -> ConfigError | None:
    try:
        TrainConfig.from_dict(values)
    except ConfigError as exc:
        return exc
    return None


def check_values(fixed: dict, params: tuple[Param, ...]) -> None:
    base = complete(fixed, params, {})
    error = config_error(base)
    if error:
        name = error.key if error.key in fixed or error.key in {p.name for p in params} else None
        path = f"fixed.{name}" if name in fixed else f"params.{name}" if name else "fixed"
        raise Invalid(path, _with_value(base.get(name), _reason(error)))
    points = [(p, i, v) for p in params for i, v in enumerate(p.endpoints())]
    for p, i, v in points:
        values = complete(fixed, params, {p.name: v})
        error = values is not None and config_error(values)
        if error:
            raise Invalid(p.endpoint_path(i), _with_value(v, _reason(error)))
    for (a, _, va), (b, _, vb) in combinations(points, 2):
        if a is b:
            continue
        values = complete(fixed, params, {a.name: va, b.name: vb})
        error = values is not None and config_error(values)
        if error:
            raise Invalid(f"params.{b.name}", f"{b.name}={show(vb)} together with {a.name}={show(va)} "
                                             f"is not a valid config: {error}")


def _reason(error: ConfigError) -> str:
    """The message without TrainConfig's "config key 'x': " lead: the path printed before it names x."""
    return str(error).removeprefix(f"config key '{error.key}': ")


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
                if known.get(parent, MISSING) not in allowed:
                    got = f"has {parent}={show(known[parent])}" if parent in known else f"does not set {parent}"
                    raise Invalid(f"{path}.{key}", f"{key} is searched only when {parent} is "
                                                   f"{' or '.join(show(a) for a in allowed)}, but this entry {got}")
        values = complete(fixed, params, chosen)
        error = config_error(values) if values is not None else "its conditions contradict each other"
        if error:
            raise Invalid(path, f"not a valid config: {error}")
        out.append(freeze({p.name: chosen[p.name] for p in params if p.name in chosen}))
    return tuple(out)
