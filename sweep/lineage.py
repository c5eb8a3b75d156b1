"""Under Population Based Training a trial's weights have a lineage: at each exploit it took another trial's
checkpoint (history.csv's `exploited_from`, `exploited_at` on the first epoch after it) and trained on under new
values of the mutated hyperparameters (`hp_<name>` on every epoch). Read from history.csv's rows alone, for the
report's plots and for replaying the winner's schedule in the retrain."""
from __future__ import annotations

import math

HP = "hp_"


def rows_by_trial(history: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for h in history:
        if _num(h.get("epoch")) is not None:
            out.setdefault(h["trial_id"], []).append(h)
    return {k: sorted(v, key=lambda h: _num(h["epoch"])) for k, v in out.items()}


def exploits(history: list[dict]) -> list[dict]:
    """Every exploit: {trial, donor, at (the donor's epoch it copied), epoch (the first the trial then trained),
    values (the hyperparameters it trained on with)}, in epoch order."""
    out = []
    for tid, rows in rows_by_trial(history).items():
        for h in rows:
            if h.get("exploited_from") not in (None, "", "nan") and _num(h.get("exploited_at")) is not None:
                out.append({"trial": tid, "donor": str(h["exploited_from"]), "at": int(_num(h["exploited_at"])),
                            "epoch": int(_num(h["epoch"])), "values": values(h)})
    return sorted(out, key=lambda e: (e["epoch"], e["trial"]))


def values(row: dict) -> dict:
    """The hyperparameter values an epoch ran at."""
    out = {}
    for k, v in row.items():
        if k.startswith(HP) and v not in (None, "", "nan"):
            f = _num(v)
            out[k[len(HP):]] = v if f is None else (int(f) if float(f).is_integer() and "." not in str(v) else f)
    return out


def schedule(history: list[dict], trial_id: str) -> list[tuple[int, dict, str]]:
    """The trial's weights' whole history: (epoch, hyperparameter values, the trial that trained that epoch), from
    epoch 1, following each exploit back to the donor up to the epoch it copied."""
    by = rows_by_trial(history)
    seen: set[str] = set()

    def walk(tid: str, upto: int | None) -> list[tuple[int, dict, str]]:
        if tid in seen or tid not in by:  # a cycle cannot happen in time; guard against a damaged file
            return []
        seen.add(tid)
        rows = [h for h in by[tid] if upto is None or _num(h["epoch"]) <= upto]
        start, before = 0, []
        for i, h in enumerate(rows):  # the last exploit at or before `upto` is where this trial's own part begins
            if h.get("exploited_from") not in (None, "", "nan") and _num(h.get("exploited_at")) is not None:
                start = i
                before = walk(str(h["exploited_from"]), int(_num(h["exploited_at"])))
        seen.discard(tid)
        return before + [(int(_num(h["epoch"])), values(h), tid) for h in rows[start:]]

    return walk(trial_id, None)


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
