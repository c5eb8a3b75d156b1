"""optuna.journal in the results folder: the sweep as an Optuna study, for `optuna-dashboard <folder>/optuna.journal`.

While Tune runs, `LiveJournal` (a listener, in the driver) appends each trial as it ends, so the dashboard shows a
running sweep. After the sweep, `record_trials` makes the study from trials.csv and history.csv. A journal is
append-only (recording the same trials again would list them twice), so a journal whose trials are each as that
study has them is only completed, and a dashboard serving it goes on; any other is replaced in one rename by a
temporary file holding the whole study (a dashboard then serving it must be restarted). Calling `record_trials`
again (a resume, a rebuilt report) gives the same journal. Both make each trial with one function,
`study.faithful_trial`, from the row trials.csv holds or would hold.
"""
from __future__ import annotations

import os
import time
from datetime import datetime

from trainables import atomic

from .. import results
from ..console import say
from ..outcome import Listener, Status, SweepRun, TrialOutcome
from . import folder as results_folder
from .study import DIRECTIONS, distribution, faithful_study, faithful_trial

JOURNAL = "optuna.journal"
# Trials --resume runs again: Tune retries errored ones and continues interrupted ones (which a report written at a
# time limit or a scheduler's signal recorded as failed).
AGAIN = (str(Status.ERRORED), str(Status.INTERRUPTED))


def record_trials(folder: str) -> str:
    """Write <folder>/optuna.journal from the sweep's files; returns its path."""
    from optuna.storages import JournalStorage

    sweep = results_folder.load(folder)
    path = os.path.join(folder, JOURNAL)
    if not _complete_live(path, sweep):
        with atomic.atomic_path(path) as tmp:
            faithful_study(sweep, storage=JournalStorage(_backend(tmp)))
    return path


def _complete_live(path: str, sweep) -> bool:
    """When every trial of the journal LiveJournal wrote is as the rebuild makes it (all but Tune's time_s), append
    the trials it lacks and return True: the file only grows, so an optuna-dashboard serving it goes on (after a
    replacement its next read lands mid-line, and it answers every request with an error until restarted)."""
    import optuna
    from optuna.storages import JournalStorage

    if not os.path.exists(path) or _mend(path, dry=True):
        return False
    want = faithful_study(sweep)
    try:
        study = optuna.load_study(study_name=want.study_name, storage=JournalStorage(_one_writer(path)))
    except (KeyError, ValueError):  # another study, or lines Optuna cannot read
        return False
    wanted = {t.user_attrs["trial_id"]: t for t in want.trials}
    have = {t.user_attrs.get("trial_id"): _as_shown(t) for t in study.trials}
    if study.directions != want.directions or len(have) < len(study.trials) or \
            any(tid not in wanted or shown != _as_shown(wanted[tid]) for tid, shown in have.items()):
        return False
    study.add_trials([t for tid, t in wanted.items() if tid not in have])
    return True


def _as_shown(t) -> tuple:
    return (t.state, t.values, t.params, t.distributions, t.intermediate_values,
            {k: v for k, v in t.user_attrs.items() if k != "time_s"})


def _backend(path: str):
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    # An open(O_EXCL) lock file: the default symlink lock needs a filesystem with symlinks.
    return JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))


class LiveJournal(Listener):
    """Appends each trial to <folder>/optuna.journal as it ends: completed (valued by the ranking rule), stopped
    early (pruned) or errored (failed); an interrupted one when a --resume ends it. One line per trial, written and
    fsynced in the driver (about 3 ms: DESIGN.md). The study (name, directions, each parameter's distribution) is
    the one `record_trials` makes after the sweep; it is created, or continued, at the sweep's first event.

    On --resume: a half-written last line (a kill mid-append) is dropped; a trial already in the journal is skipped
    when it ends again (Tune had not recorded its end: it is restored and ends at once); an errored or interrupted
    one is taken out (a rewrite: a dashboard serving the journal then must be restarted), since it runs again and is
    appended when it ends. A trial resumed mid-way has the epochs reported since the resume as its curve, until
    `record_trials` replaces the journal with the one that has them all."""

    def __init__(self, folder: str, spec):
        self.folder, self.path, self.spec = folder, os.path.join(folder, JOURNAL), spec
        self.manifest = {"spec": spec.to_dict(), "param_names": list(spec.param_names)}
        self.dists = {p.name: distribution(p.to_dict()) for p in spec.params}
        several = len(spec.objectives) >= 2  # as study.objective_metrics: several objectives, else the one metric
        self.metrics = [o.metric for o in spec.objectives] if several else [spec.metric]
        self.directions = [DIRECTIONS[o.mode] for o in spec.objectives] if several else [DIRECTIONS[spec.mode]]
        self.study = None  # opened at the first event
        self.recorded: set[str] = set()  # trial ids in the journal
        self.started: dict[str, tuple[float, dict]] = {}  # trial id -> (when, its config)
        self.epochs: dict[str, dict] = {}  # trial id -> {epoch: metrics}

    def on_tick(self):
        if self.study is None:
            self._open()

    def on_start(self, trial_id, config):
        when, _ = self.started.get(trial_id, (time.time(), None))
        self.started[trial_id] = (when, dict(config))

    def on_result(self, trial_id, metrics):
        self.epochs.setdefault(trial_id, {})[metrics.get("epoch")] = metrics

    def on_end(self, trial_id, status, metrics, error):
        if self.study is None:
            self._open()
        when, config = self.started.pop(trial_id, (None, {}))
        epochs = self.epochs.pop(trial_id, {})
        if status is Status.INTERRUPTED or trial_id in self.recorded:
            return
        self.study.add_trial(self.trial(trial_id, status, config, metrics, error, epochs, when))
        self.recorded.add(trial_id)

    def close(self, interrupted):
        self.study = None

    def trial(self, trial_id, status, config, metrics, error, epochs: dict, when: float | None = None):
        """The trial as `record_trials` will make it from trials.csv's row (results.trial_rows) and history.csv's,
        but for `time_s` (Tune's, over every attempt: in the rebuild) and the times (when it started in this run)."""
        history = [epochs[e] for e in sorted(epochs, key=lambda e: (e is None, e or 0))]
        last = {k[3:]: v for k, v in metrics.items() if k.startswith("hp_")}  # PBT: the values it ended with
        outcome = TrialOutcome(trial_id, status, {**config, **{k: v for k, v in last.items() if k in config}},
                               metrics, history, None, 0.0, error=str(error or ""))
        (row,) = results.trial_rows(SweepRun([outcome]), self.spec)
        row.update(epochs=max(outcome.epochs, int(metrics.get("epoch", 0) or 0)), time_s="")
        row = {k: "" if v is None else str(v) for k, v in row.items()}  # the cells trials.csv will hold
        sweep = results_folder.Sweep(self.folder, self.manifest, [row], [{"trial_id": trial_id, **h} for h in history])
        made = faithful_trial(sweep, row, self.dists, self.metrics)
        made.datetime_complete = datetime.now()  # naive local time, as Optuna's own
        if when is not None:
            made.datetime_start = datetime.fromtimestamp(when)
        return made

    def _open(self) -> None:
        import optuna
        from optuna.storages import JournalStorage

        if _mend(self.path):
            say(f"{self.path}: dropped a half-written last line (a kill while a trial was appended)")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = JournalStorage(_one_writer(self.path))
        try:  # continued; create_study(load_if_exists=True) would append a second CREATE_STUDY line each run
            study = optuna.load_study(study_name=self.spec.name, storage=storage)
        except KeyError:
            study = optuna.create_study(study_name=self.spec.name, storage=storage, directions=self.directions)
        trials = study.get_trials(deepcopy=False)
        kept = [t for t in trials if t.user_attrs.get("status") not in AGAIN]
        if len(kept) < len(trials):  # each is appended again when it ends
            with atomic.atomic_path(self.path) as tmp:
                optuna.create_study(study_name=self.spec.name, storage=JournalStorage(_one_writer(tmp)),
                                    directions=self.directions).add_trials(kept)
            study = optuna.load_study(study_name=self.spec.name, storage=JournalStorage(_one_writer(self.path)))
        self.recorded = {t.user_attrs.get("trial_id") for t in kept}
        self.study = study


def _mend(path: str, dry: bool = False) -> bool:
    """Drop a half-written last line (a kill mid-append; `dry`: only say whether there is one); True when there
    was one. Optuna's reader skips such a line, but the next append would run on from it, and the line made of both
    stops every later read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    whole = data[:data.rfind(b"\n") + 1]
    if len(whole) == len(data):
        return False
    if not dry:
        with atomic.open_writer(path, "wb") as f:
            f.write(whole)
    return True


class _NoLock:
    """JournalFileBackend's lock without a lock file: the driver is the live journal's one writer (the dashboard only
    reads), and a lock file left by a kill mid-append would hold the next run's first append for Optuna's 30 s."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _one_writer(path: str):
    from optuna.storages.journal import JournalFileBackend

    return JournalFileBackend(path, lock_obj=_NoLock())
