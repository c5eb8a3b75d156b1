"""What the trial scheduler did: where it stopped trials and the epochs that saved, for every scheduler of the table;
under PBT, every exploit, the winner's schedule and the population's lineage (sweep/report/lineage.py)."""
from __future__ import annotations

from dataclasses import dataclass

from ..trial_schedulers import SCHEDULERS, asha_rungs, name_of
from .folder import Sweep, num
from .sections import table


@dataclass
class Summary:
    type: str
    describe: str  # the table row's own line, as the plan printed it
    rungs: list[int]  # the epochs at which ASHA compares trials (none for the others)
    rows: list[tuple[int, int, int]]  # (epoch, trials that reached it, trials stopped there)
    spent: int  # epochs trained by all trials together
    full: int  # epochs had every trial trained to max_epochs (an errored trial counts what it ran)


def scheduler_of(spec: dict) -> tuple[str, dict]:
    """(type, settings) from sweep.json's spec; sweeps recorded before the table had an `asha:` section."""
    ts = spec.get("trial_scheduler") or {"type": "asha", **spec.get("asha", {})}
    return ts.get("type", "asha"), {k: v for k, v in ts.items() if k != "type"}


def summarise(sweep: Sweep) -> Summary:
    kind, values = scheduler_of(sweep.spec)
    row = SCHEDULERS[kind]
    known = {k: v for k, v in values.items() if k in row.readers}
    settings = row.settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})
    max_t = sweep.max_epochs
    epochs = {t["trial_id"]: int(num(t.get("epochs")) or 0) for t in sweep.trials}
    stopped = [epochs[t["trial_id"]] for t in sweep.trials if t["status"] == "stopped_early"]
    ran = list(epochs.values())
    trained = [int(num(t.get("epochs_trained")) or epochs[t["trial_id"]]) for t in sweep.trials]
    rungs = sorted({int(r) for b in range(getattr(settings, "brackets", 1))
                    for r in asha_rungs(max_t, settings.grace_period, settings.reduction_factor, b)}) \
        if kind == "asha" else []
    rows = [(e, sum(n >= e for n in ran), stopped.count(e)) for e in sorted(set(rungs) | set(stopped))]
    full = sum(n if t["status"] == "errored" else max(max_t, n) for t, n in
               ((t, epochs[t["trial_id"]]) for t in sweep.trials))
    return Summary(kind, row.describe(settings, max_t), rungs, rows, sum(trained), full)


def section(sweep: Sweep) -> list[str]:
    s = summarise(sweep)
    name = name_of(s.type)
    lines = [f"## What {name} did", "", f"{s.describe[0].upper()}{s.describe[1:]}; at most {sweep.max_epochs} "
             f"epochs per trial."]
    if s.type == "asha":
        rungs = ", ".join(map(str, s.rungs)) or "(none: a trial never reaches a rung before its last epoch)"
        lines += ["", f"Trials are compared at epochs {rungs}."]
    if s.rows:
        lines += ["", table(["epoch" + (" (rung)" if s.type == "asha" else ""), "trials that reached it",
                             f"stopped there by {name}"], [[str(e), str(r), str(n)] for e, r, n in s.rows])]
    saved = 100 * (1 - s.spent / s.full) if s.full else 0.0
    lines += ["", f"Epochs trained: **{s.spent}**, against {s.full} had the same {len(sweep.trials)} trials all run "
                  f"to the end ({saved:.1f}% saved)." if s.spent <= s.full else
              f"Epochs trained: **{s.spent}**, more than the {s.full} of training every trial once to the end: "
              f"a trial given another's weights goes back to that trial's epoch and trains on from there.", ""]
    if s.type in ("pbt", "pb2"):
        from .lineage import lineage_section

        lines += lineage_section(sweep)
    return lines
