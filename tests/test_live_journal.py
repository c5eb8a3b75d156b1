"""optuna.journal appended as each trial ends (sweep.report.journal.LiveJournal).

Without Ray: each trial as the rebuild after the sweep makes it, no trial twice through a resume, a kill mid-append
mended, a failure said in one line, and what one append costs.
Then ONE real sweep (8 trials, one at a time): the real optuna-dashboard, started once the console reports the first
finished trial, serves it and then more while the sweep runs; kill -9 at the next finished trial; --resume killed -9
the moment every trial has ended (the journal then is the live one: each trial once); --resume to the end: the
rebuilt journal agrees with the live one on trial ids and states."""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
import yaml
from conftest import blobs, write_npz
from helpers.journal import attr, dashboard, load, served_trials, trial_ids
from report_util import ALL, make, read_csv
from sweep_util import ROOT, orchestrate, write_space

from sweep.outcome import Failure, Listeners, Status
from sweep.report import record_trials
from sweep.report.folder import num
from sweep.report.journal import JOURNAL, LiveJournal
from sweep.report.study import _value, distribution
from sweep.space import load_space


def spec_of(folder: str):
    """The SweepSpec a results folder was made with, from sweep.json (its YAML form loads back to an equal spec)."""
    d = dict(json.load(open(os.path.join(folder, "sweep.json")))["spec"])
    for key in ("source_path", "smoke_applied", *(("metric", "mode") if len(d.get("objectives") or []) >= 2 else
                                                 ("objectives", "pick"))):
        d.pop(key, None)
    path = os.path.join(folder, "space.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(d, f, sort_keys=False)
    return load_space(path)


def replay(live: LiveJournal, folder: str) -> None:
    """A finished sweep's trials as the driver's events: each start (its config), epoch and end."""
    spec = live.spec
    history = read_csv(os.path.join(folder, "history.csv"))
    for row in read_csv(os.path.join(folder, "trials.csv")):
        dists = {p.name: distribution(p.to_dict()) for p in spec.params}
        config = {k: v for k, d in dists.items() if (v := _value(row.get(k, ""), d)) is not None}
        live.on_start(row["trial_id"], config)
        epochs = [{k: num(v) for k, v in h.items() if k != "trial_id" and not k.startswith(("hp_", "exploited"))
                   and num(v) is not None} for h in history if h["trial_id"] == row["trial_id"]]
        for m in epochs:
            live.on_result(row["trial_id"], {**m, "epoch": int(m["epoch"])})
        error = Failure(row["error"]) if row["status"] == "errored" else ""
        live.on_end(row["trial_id"], Status(row["status"]), epochs[-1] if epochs else {}, error)


def _trial(t) -> dict:
    """What must agree between the live and the rebuilt journal (not the times, nor Tune's time_s)."""
    return {"state": t.state, "values": t.values, "params": t.params, "distributions": t.distributions,
            "intermediate_values": t.intermediate_values,
            "user_attrs": {k: v for k, v in t.user_attrs.items() if k != "time_s"}}


@pytest.mark.parametrize("name", ALL)
def test_each_trial_is_appended_as_the_rebuild_after_the_sweep_makes_it(name, tmp_path):
    folder = make(name, tmp_path)
    path = os.path.join(folder, JOURNAL)
    want = load(record_trials(folder))  # the study the sweep's files make
    os.unlink(path)
    live = LiveJournal(folder, spec_of(folder))
    live.on_tick()  # the sweep's first event: the study exists before any trial ends
    assert len(load(path).trials) == 0
    replay(live, folder)
    live.close(False)
    got = load(path)
    assert (got.study_name, got.directions) == (want.study_name, want.directions)
    assert {t.user_attrs["trial_id"]: _trial(t) for t in got.trials} == \
        {t.user_attrs["trial_id"]: _trial(t) for t in want.trials}
    assert all(t.datetime_start <= t.datetime_complete for t in got.trials)
    # After the sweep: a journal as the files make it is kept (a dashboard serving it goes on reading it).
    appended = open(path, "rb").read()
    record_trials(folder)
    assert open(path, "rb").read() == appended


def test_a_journal_unlike_the_files_is_replaced_after_the_sweep(tmp_path):
    """A trial resumed mid-way is appended with the epochs since the resume: the rebuild has them all."""
    folder = make("smoke4", tmp_path)
    path = os.path.join(folder, JOURNAL)
    want = {t.user_attrs["trial_id"]: _trial(t) for t in load(record_trials(folder)).trials}
    os.unlink(path)
    live = LiveJournal(folder, spec_of(folder))
    first = read_csv(os.path.join(folder, "trials.csv"))[0]["trial_id"]
    real = live.on_result
    live.on_result = lambda trial_id, m: None if (trial_id, m["epoch"]) == (first, 1) else real(trial_id, m)
    replay(live, folder)
    assert 1 not in load(path).trials[0].intermediate_values
    record_trials(folder)
    assert {t.user_attrs["trial_id"]: _trial(t) for t in load(path).trials} == want
    assert not [f for f in os.listdir(folder) if f.startswith(".optuna.journal")]  # no temp files left


def test_a_dashboard_serving_the_live_journal_goes_on_after_the_sweep(tmp_path):
    pytest.importorskip("optuna_dashboard",
                        reason="optuna-dashboard is the optional extra: pip install -e '.[dashboard]'")
    folder = make("smoke4", tmp_path)
    rows = read_csv(os.path.join(folder, "trials.csv"))
    live = LiveJournal(folder, spec_of(folder))
    live.on_tick()
    last = live.on_end
    live.on_end = lambda trial_id, *a: None if trial_id == rows[-1]["trial_id"] else last(trial_id, *a)
    replay(live, folder)  # every trial but the last has ended
    with dashboard(os.path.join(folder, JOURNAL), tmp_path / "dashboard.log") as base:
        assert len(served_trials(base)) == len(rows) - 1
        record_trials(folder)  # the sweep's end: the last trial appended, nothing replaced
        deadline = time.time() + 30  # the dashboard keeps a study's trials for 2 s
        while len(served := served_trials(base)) < len(rows):
            assert time.time() < deadline, served
            time.sleep(0.3)
        assert sorted(attr(t, "trial_id") for t in served) == sorted(r["trial_id"] for r in rows)


@pytest.fixture
def space(tmp_path):
    return load_space(write_space(tmp_path, name="live"))


def end(live: LiveJournal, trial_id: str, status: Status, epochs: int = 2, lr: float = 0.01):
    """One trial's events, as the adapter calls them."""
    live.on_start(trial_id, {"lr": lr, "batch_size": 32, "scheduler": "cosine"})
    for e in range(1, epochs + 1):
        live.on_result(trial_id, {"epoch": e, "val_loss": 4.6 - lr * e, "val_acc": 0.01 * e})
    live.on_end(trial_id, status, {"epoch": epochs, "val_loss": 4.6 - lr * epochs, "val_acc": 0.01 * epochs},
                Failure("DivergedError: loss became nan") if status is Status.ERRORED else "")


def states(path) -> dict:
    study = load(str(path))
    assert len(study.trials) == len({t.user_attrs["trial_id"] for t in study.trials}), "a trial is there twice"
    return {t.user_attrs["trial_id"]: t.state.name for t in study.trials}


def test_a_resume_appends_no_trial_twice_and_retries_errored_ones(space, tmp_path):
    first = LiveJournal(str(tmp_path), space)
    end(first, "a", Status.COMPLETED, 4)
    end(first, "b", Status.STOPPED_EARLY, 1)
    end(first, "c", Status.ERRORED, 1)
    first.on_start("d", {"lr": 0.01, "batch_size": 32, "scheduler": "cosine"})
    first.on_end("d", Status.INTERRUPTED, {"epoch": 1, "val_loss": 4.5}, "")  # --resume continues it: not a result
    assert states(tmp_path / JOURNAL) == {"a": "COMPLETE", "b": "PRUNED", "c": "FAIL"}
    # Killed; --resume: Tune had not recorded a's end (restored, it ends at once), retries c, continues d.
    again = LiveJournal(str(tmp_path), space)
    again.on_tick()
    assert states(tmp_path / JOURNAL) == {"a": "COMPLETE", "b": "PRUNED"}  # c runs again
    end(again, "a", Status.COMPLETED, 4)
    end(again, "c", Status.COMPLETED, 4)
    end(again, "d", Status.STOPPED_EARLY, 2)
    assert states(tmp_path / JOURNAL) == {"a": "COMPLETE", "b": "PRUNED", "c": "COMPLETE", "d": "PRUNED"}
    # A finished sweep resumed again (the journal is the rebuilt one then): nothing new, nothing twice.
    before = (tmp_path / JOURNAL).read_bytes()
    third = LiveJournal(str(tmp_path), space)
    end(third, "d", Status.STOPPED_EARLY, 2)
    assert (tmp_path / JOURNAL).read_bytes() == before


def test_a_half_written_last_line_is_dropped_before_the_next_append(space, tmp_path, capsys):
    path = str(tmp_path / JOURNAL)
    first = LiveJournal(str(tmp_path), space)
    end(first, "a", Status.COMPLETED, 4)
    end(first, "b", Status.COMPLETED, 4)
    whole = open(path, "rb").read()
    b_line = whole[whole.rstrip(b"\n").rfind(b"\n") + 1:]
    torn = whole[:len(whole) - len(b_line)] + b_line[:len(b_line) // 2]  # killed while b was being appended
    open(path, "wb").write(torn)
    # What Optuna does with it: reads past the torn line (a and no b) ...
    assert trial_ids(path) == ["a"]
    # ... but an append runs on from it: the line made of both is lost, and with one more line every read fails.
    spoilt = str(tmp_path / "spoilt.journal")
    open(spoilt, "wb").write(torn)
    load(spoilt).set_user_attr("x", 1)
    assert load(spoilt).user_attrs == {}
    with pytest.raises(ValueError):
        load(spoilt).set_user_attr("y", 2)
    with pytest.raises(ValueError):
        load(spoilt)
    # The resumed run mends it first: b (its end not recorded by Tune) ends again and is appended whole.
    capsys.readouterr()
    again = LiveJournal(str(tmp_path), space)
    again.on_tick()
    assert "dropped a half-written last line" in capsys.readouterr().out
    end(again, "b", Status.COMPLETED, 4)
    end(again, "c", Status.STOPPED_EARLY, 1)
    assert states(path) == {"a": "COMPLETE", "b": "COMPLETE", "c": "PRUNED"}
    assert open(path, "rb").read().startswith(whole[:len(whole) - len(b_line)])


def test_a_broken_journal_is_said_in_one_line_and_the_sweep_goes_on(space, tmp_path, capsys):
    (tmp_path / "gone").write_text("a file where the results folder should be")
    listeners = Listeners([LiveJournal(str(tmp_path / "gone"), space)])
    listeners.on_tick()
    end(listeners, "a", Status.COMPLETED, 4)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("[sweep] LiveJournal failed (") and "it is off from here" in out
    assert listeners.members == []


def test_one_append_is_cheap(space, tmp_path):
    """It runs in Tune's loop: a trial's row, the Optuna trial, one line written and fsynced."""
    live = LiveJournal(str(tmp_path), space)
    live.on_tick()
    took = []
    for i in range(30):
        live.on_start(f"t{i}", {"lr": 0.01, "batch_size": 32, "scheduler": "step", "step_size": 2})
        for e in range(1, 5):
            live.on_result(f"t{i}", {"epoch": e, "val_loss": 4.6 - 0.01 * e, "val_acc": 0.01 * e})
        t0 = time.perf_counter()
        live.on_end(f"t{i}", Status.COMPLETED, {"epoch": 4, "val_loss": 4.5, "val_acc": 0.04}, "")
        took.append(time.perf_counter() - t0)
    print(f"one append: median {statistics.median(took) * 1e3:.1f} ms, max {max(took) * 1e3:.1f} ms")
    assert len(load(str(tmp_path / JOURNAL)).trials) == 30
    assert statistics.median(took) < 0.05


# --- Real sweeps: the dashboard started mid-sweep, a kill -9, two --resume runs -------------------------------------

N_TRIALS = 8
FINISHED = re.compile(r"\[sweep\] trial (\w+) (completed|stopped early by \w+|errored) after")
STATE_OF = {"completed": "COMPLETE", "errored": "FAIL"}  # and "stopped early by <scheduler>": PRUNED


class Orchestrator:
    """orchestrator.py in its own session, its output read by a thread, which kills the whole session (kill -9) at
    the first finished-trial line where `kill_when(the finished (id, what) so far)` holds."""

    def __init__(self, args: list[str], kill_when=None):
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "orchestrator.py"), *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.finished: list[tuple[str, str]] = []
        self.first = threading.Event()
        self.kill_when = kill_when
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            found = FINISHED.search(line)
            if found:
                self.finished.append((found.group(1), found.group(2)))
                self.first.set()
                if self.kill_when and self.kill_when(self.finished):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the worst time: the end is not Tune's record yet
                    self.kill_when = None
        self.first.set()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 300) -> int:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.reader.join(timeout=30)
        return self.proc.returncode

    def text(self) -> str:
        return "".join(self.lines)[-3000:]


def _states(path) -> dict[str, str]:
    study = load(str(path))
    return {t.user_attrs["trial_id"]: t.state.name for t in study.trials}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    pytest.importorskip("optuna_dashboard",
                        reason="optuna-dashboard is the optional extra: pip install -e '.[dashboard]'")
    tmp = tmp_path_factory.mktemp("live")
    space = write_space(tmp, name="live", n=N_TRIALS)
    folder = tmp / "results" / "live"
    journal = folder / JOURNAL
    # Epochs of about half a second (2400 images): trials end seconds apart, time for the dashboard to start.
    (x, y), (x_test, y_test) = blobs(3000, seed=1), blobs(100, seed=2)
    data = write_npz(tmp / "synth3k.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    args = ["--space", space, "--data", data, "--results-dir", str(tmp / "results"), "--wandb", "off",
            "--cpus", "2", "--max-concurrent", "1", "--no-retrain", "--set", "fixed.subset=2400"]
    out: dict = {"journal": journal}
    # 1. optuna-dashboard started once the console reports the first finished trial: while the sweep runs it
    #    serves that trial, then more; the sweep is then killed -9 at its next finished trial.
    seen_all = threading.Event()
    first = Orchestrator(args, kill_when=lambda finished: seen_all.is_set())
    try:
        assert first.first.wait(300) and first.finished, first.text()
        served: list[int] = []  # trials served, each while the orchestrator was running
        with dashboard(str(journal), tmp / "dashboard.log") as base:
            while first.running and len(set(served)) < 2:
                n = len(served_trials(base))
                if first.running and n:
                    served.append(n)
                time.sleep(0.3)
            seen_all.set()
            out["first_rc"] = first.wait()
            out["served_after_kill"] = len(served_trials(base))
        out["served"] = served
    finally:
        first.wait()
    out["first"], out["after_kill"] = first, trial_ids(str(journal))
    # 2. --resume, killed -9 the moment every trial has ended (before Tune's own end and the rebuild).
    ended = set(out["after_kill"])
    second = Orchestrator(args + ["--resume"], kill_when=lambda f: len(ended | {i for i, _ in f}) == N_TRIALS)
    out["second_rc"], out["second"] = second.wait(), second
    out["live_ids"], out["live_states"] = trial_ids(str(journal)), _states(journal)
    out["live_attrs"] = [t.user_attrs for t in load(str(journal)).trials]
    out["tables_before_the_end"] = (folder / "trials.csv").exists()
    out["live_bytes"] = journal.read_bytes()
    # 3. --resume to the end: the journal rebuilt from the result files.
    out["third"] = orchestrate(*args, "--resume")
    out["final_ids"], out["final_states"] = trial_ids(str(journal)), _states(journal)
    out["final_attrs"] = [t.user_attrs for t in load(str(journal)).trials]
    out["final_bytes"] = journal.read_bytes()
    out["rows"] = read_csv(folder / "trials.csv")
    return out


def test_the_dashboard_shows_trials_while_the_sweep_runs(chain):
    served = chain["served"]
    assert chain["first_rc"] == -signal.SIGKILL, chain["first"].text()
    assert served and served[0] >= 1 and max(served) > served[0], (served, chain["first"].text())
    assert chain["served_after_kill"] >= max(served)


def test_a_trial_the_console_reports_ended_is_in_the_journal_once(chain):
    reported = {i for i, _ in chain["first"].finished}
    assert reported <= set(chain["after_kill"]), (reported, chain["after_kill"])
    assert len(chain["after_kill"]) == len(set(chain["after_kill"])) < N_TRIALS


def test_kill_9_and_resume_append_every_trial_once(chain):
    assert chain["second_rc"] == -signal.SIGKILL, chain["second"].text()
    assert not chain["tables_before_the_end"]  # so the journal read is the live one, not the rebuild
    assert not any("time_s" in a for a in chain["live_attrs"])
    assert len(chain["live_ids"]) == len(set(chain["live_ids"])) == N_TRIALS, chain["live_ids"]
    for trial_id, what in chain["first"].finished + chain["second"].finished:
        assert chain["live_states"][trial_id] == STATE_OF.get(what, "PRUNED"), (trial_id, what)
    # Ended again after the kill (Tune had not recorded the end): skipped, not appended twice. Not every kill hits it.
    print("ended again after kill -9:", sorted({i for i, _ in chain["second"].finished} & set(chain["after_kill"])))


def test_the_rebuild_after_the_sweep_agrees_with_the_live_journal(chain):
    proc = chain["third"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Kept when each trial is as the files make it (no trial was resumed mid-way), else replaced by the rebuild.
    kept = chain["final_bytes"].startswith(chain["live_bytes"])
    assert kept or all("time_s" in a for a in chain["final_attrs"])
    assert len(chain["final_ids"]) == len(set(chain["final_ids"])) == N_TRIALS
    assert chain["final_states"] == chain["live_states"]
    assert {r["trial_id"] for r in chain["rows"]} == set(chain["final_ids"])
