"""Tune's results as `sweep.outcome` data: our statuses, the engine's metric names, one history row per epoch.
No Ray name (`training_iteration`, `timestamp`, ...) passes this module."""
from __future__ import annotations

import json
import os

from ..outcome import Failure, Status, SweepRun, TrialOutcome
from . import compat
from . import durability as dur

# What Tune adds to every result: dropped at the boundary, so no Ray name reaches results files or trackers.
RAY_KEYS = frozenset(compat.AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint",
                                                  "iterations_since_restore", "checkpoint_dir_name"}


def engine_metrics(result: dict) -> dict:
    return {k: v for k, v in (result or {}).items() if k not in RAY_KEYS and k != "config"}


def collect(grid, max_epochs: int, exp_path: str, active=dict) -> SweepRun:
    trials = []
    for result in grid:
        raw = dict(result.metrics or {})
        tid = raw.get("trial_id") or os.path.basename(result.path).removeprefix("trial_")
        df = result.metrics_dataframe
        hist = [] if df is None else df.to_dict("records")
        epochs = int(raw.get("training_iteration", len(hist)) or 0)
        rows = [engine_metrics(h) for h in _complete_history(hist, epochs, result.checkpoint)]
        # A row Tune logged twice is a copy (a restored trial re-reports its last epoch): same end time. An epoch
        # trained again (after PBT's exploit) ended at another time.
        trained = len({(h.get("epoch"), h.get("ended_at")) for h in rows})
        hist = _one_row_per_epoch(rows)
        # Ctrl-C makes fit() return normally, the trials it stopped marked TERMINATED like finished ones. A
        # finished trial has a FINISHED_MARK (or, from before marks, `done`; a restored trial that ended
        # without a new result keeps `done` False, so `done` alone is not enough).
        finished = dur.is_finished(result.filesystem, result.path) or bool(raw.get("done"))
        error, failure = "", None
        if result.error is not None and not _is_interrupt(result.error):
            failure = _failure(result.filesystem, result.path, result.error)
            status, error = Status.ERRORED, failure.message
        elif not finished:
            status = Status.INTERRUPTED
        elif epochs >= max_epochs:
            status = Status.COMPLETED
        else:
            status = Status.STOPPED_EARLY
        trials.append(TrialOutcome(
            trial_id=tid, status=status, config=active(result.config or {}), metrics=engine_metrics(raw), history=hist,
            checkpoint=result.checkpoint.path if result.checkpoint is not None else None,
            wall_s=float(raw.get("time_total_s", 0.0) or 0.0), error=error, failure=failure, trained=trained))
    return SweepRun(trials, exp_path)


def _failure(fs, folder: str, exc: BaseException) -> Failure:
    """The trial's own account of its exception (ERROR_MARK), else the exception Tune kept, unwrapped."""
    try:
        mark = json.loads(dur.read_file(fs, os.path.join(folder, dur.ERROR_MARK)) or "")
        return Failure(str(mark["message"])[:500], str(mark["kind"]), bool(mark["user"]))
    except (ValueError, KeyError, TypeError):
        cause = _cause(exc)
        return Failure(last_line(f"{type(cause).__name__}: {cause}") or "error", type(cause).__name__)


def _cause(exc: BaseException) -> BaseException:
    """The trial's own exception inside Ray's wrappers (RayTaskError keeps it as `cause`)."""
    while getattr(exc, "cause", None) is not None and exc.cause is not exc:
        exc = exc.cause
    return exc


def _is_interrupt(err: BaseException) -> bool:
    """A trial whose worker got the Ctrl-C itself (a terminal sends it to the whole process group) errors with the
    KeyboardInterrupt Ray wrapped: interrupted, not failed. Decided by the exceptions' types, along both chains."""
    seen, todo = set(), [err]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return True
        todo += [getattr(exc, "cause", None), exc.__cause__, exc.__context__]
    return False


def _one_row_per_epoch(hist: list[dict]) -> list[dict]:
    """A trial restored from the checkpoint of its last epoch (after a stop) has that epoch twice in Tune's
    result log, copies of one another (measured under real SLURM: the last finished epoch of each trial in
    flight at a time-limit stop). The later row stands: an epoch trained again would differ, and be seen."""
    rows: dict = {}
    for h in hist:
        rows[h.get("epoch")] = h
    return [rows[e] for e in sorted(rows, key=lambda e: (e is None, e or 0))]


def _complete_history(hist: list[dict], epochs: int, checkpoint) -> list[dict]:
    """Ray's result.json of a retried trial can lose epochs (its logger copies back the storage's copy, which
    lags); the trial's own last checkpoint holds every epoch's metrics: fill the gaps from there."""
    if len({h.get("training_iteration") for h in hist}) >= epochs or checkpoint is None:
        return hist
    try:
        saved = dur.load_state(checkpoint.filesystem, checkpoint.path)["history"]
    except Exception:  # noqa: BLE001 - keep what Ray has
        return hist
    ray_rows = {h.get("training_iteration"): h for h in hist}
    return [ray_rows.get(m["epoch"], {**m, "training_iteration": m["epoch"]}) for m in saved[:epochs]]


def last_line(text: str) -> str:
    # Ray wraps the trial's exception in a RayTaskError whose last line is the original message.
    for line in reversed(text.strip().splitlines()):
        if line.strip():
            return line.strip()[:500]
    return ""
