"""One searched parameter: its distribution and its condition, parsed from a `params:` entry.

Suggesting a value is define_by_run.py's job (the only `trial.suggest_*` calls)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from trainables.errors import did_you_mean

from .errors import Invalid
from .values import FrozenDict, field_value, join, mapping, number, show

DISTRIBUTIONS = {
    "uniform": ("low", "high", "step"),
    "loguniform": ("low", "high"),
    "int": ("low", "high", "step"),
    "logint": ("low", "high"),
    "choice": ("values",),
}


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of DISTRIBUTIONS
    low: Any = None
    high: Any = None
    step: Any = None
    values: tuple = ()
    when: FrozenDict = field(default_factory=FrozenDict)  # parent -> tuple of values that switch it on

    @property
    def log(self) -> bool:
        return self.type in ("loguniform", "logint")

    def endpoints(self) -> tuple:
        """The values worth checking against TrainConfig: every choice, or both ends of a range."""
        return self.values if self.type == "choice" else (self.low, self.high)

    def endpoint_path(self, index: int) -> str:
        base = f"params.{self.name}"
        return f"{base}.values[{index}]" if self.type == "choice" else f"{base}.{('low', 'high')[index]}"

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return any(type(value) is type(v) and value == v for v in self.values)
        if self.type in ("int", "logint") and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        return self.step is None or _on_grid(value - self.low, self.step)

    def active(self, values: dict) -> bool:
        """Searched in a trial whose fixed + already-sampled values are `values`."""
        return all(k in values and values[k] in allowed for k, allowed in self.when.items())

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "choice":
            out["values"] = list(self.values)
        else:
            out.update(low=self.low, high=self.high)
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        return out


def _on_grid(offset: float, step: float) -> bool:
    """Sampled values are low + k*step in floating point: allow rounding error."""
    k = offset / step
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


def _divides(low, high, step) -> bool:
    """Optuna's own test, on the decimals as written (else it quietly moves `high` and warns)."""
    if isinstance(step, int) and isinstance(low, int) and isinstance(high, int):
        return (high - low) % step == 0
    try:
        return (Decimal(str(high)) - Decimal(str(low))) % Decimal(str(step)) == 0
    except InvalidOperation:  # more than 10^28 steps: Optuna's own check would fail the same way
        return False


def parse_param(name: str, raw: Any, typ: str) -> Param:
    """One `params:` entry for a TrainConfig field of type `typ`; `when` is resolved by the caller."""
    path = f"params.{name}"
    if not isinstance(raw, dict):
        raise Invalid(path, f"{show(raw)} is not a mapping; write e.g. {{type: uniform, low: 0.0, high: 1.0}}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in DISTRIBUTIONS:
        why = "is required" if "type" not in raw else f"{show(kind)} is not a distribution"
        raise Invalid(f"{path}.type", f"{why}{did_you_mean(kind, DISTRIBUTIONS)}")
    mapping(raw, path, ("type", "when") + DISTRIBUTIONS[kind], required=("type",) + DISTRIBUTIONS[kind][:2])
    if typ in ("str", "bool") and kind != "choice":
        raise Invalid(f"{path}.type", f"{show(kind)} does not fit {name}, which is a {typ} setting; use type: choice")
    if typ == "int" and kind in ("uniform", "loguniform"):
        raise Invalid(f"{path}.type", f"{show(kind)} does not fit {name}, which is a whole number; use int or logint")
    if kind == "choice":
        return Param(name, kind, values=_choices(raw["values"], f"{path}.values", typ))
    integer = kind in ("int", "logint")
    low = number(raw["low"], f"{path}.low", integer=integer)
    high = number(raw["high"], f"{path}.high", integer=integer)
    if low >= high:
        raise Invalid(f"{path}.high", f"{show(raw['high'])} must be greater than low ({show(raw['low'])}); "
                                      f"to keep a value constant, put it under fixed:")
    if kind == "loguniform" and low <= 0:
        raise Invalid(f"{path}.low", f"{show(raw['low'])} is not allowed; a log scale needs low > 0")
    if kind == "logint" and low < 1:
        raise Invalid(f"{path}.low", f"{show(raw['low'])} is not allowed; logint needs low >= 1")
    step = None
    if "step" in raw:
        step = number(raw["step"], f"{path}.step", integer=integer, above=0)
        if not _divides(low, high, step):
            raise Invalid(f"{path}.step", f"{show(raw['step'])} does not divide high - low ({high - low}); "
                                          f"choose a step that lands on high")
    return Param(name, kind, low=low, high=high, step=step)


def _choices(raw: Any, path: str, typ: str) -> tuple:
    if not isinstance(raw, list) or not raw:
        raise Invalid(path, f"{show(raw)} is not allowed; give a non-empty list, e.g. [a, b]")
    values = []
    for i, item in enumerate(raw):
        value = field_value(item, join(path, i), typ)
        if value in values:
            raise Invalid(join(path, i), f"{show(item)} is listed twice; each choice once")
        values.append(value)
    return tuple(values)
