"""The pipeline around the sweep, faulted where a real sweep is too slow to fault at every point.

orchestrator.py's own code runs in this process; only Ray is replaced by a finished (or interrupted) fake
sweep of three trials. The real retrain, result files and report run. Checked:
- the disk fills up at each output in turn: exit 2, one line naming the file, the file as it was before and
  every other earlier file still whole; the next run finishes;
- Tune returns with trials unfinished (what Ctrl-C does to it): exit 130, how to resume, no trials.csv;
- Ctrl-C during the retrain: exit 130; --resume finishes, keeping what the retrain had done;
- wandb cannot even be imported: the sweep runs with tracking off and says so;
- every trial errored: exit 3 and one line naming the commonest error (the CLI and sweep.api); the first trials all
  made the same user mistake: stopped there, one line, exit 2 (and not for a divergence or differing errors).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys

import pytest
import torch

from sweep_util import SPACE, read_csv

# The sweep tests' space, with 2 epochs and no robustness evaluation after the retrain (seconds, not minutes).
FIXED_SPACE = "\n".join(line for line in SPACE.replace("epochs: 4", "epochs: 2").splitlines()
                        if not line.startswith("ood_val:")) + "\nood_val: {{test_images: 0}}\n"

TRIALS = [  # config, status, epochs, val_loss per epoch, error
    ({"lr": 0.01, "batch_size": 32, "scheduler": "cosine"}, "completed", [4.2, 4.0], ""),
    ({"lr": 0.001, "batch_size": 64, "scheduler": "step", "step_size": 1}, "stopped_early", [4.5], ""),
    ({"lr": 0.1, "batch_size": 32, "scheduler": "cosine"}, "errored", [4.4], "RuntimeError: injected"),
]


def _fake_run(unfinished=()):
    """Three trials as the adapter returns them; `unfinished`: ids still running when Tune was stopped."""
    from sweep.outcome import Status, StopReason, SweepRun, TrialOutcome

    trials = []
    for i, (config, status, losses, error) in enumerate(TRIALS):
        tid = f"t{i}"
        hist = [{"epoch": e, "val_loss": v, "train_loss": v, "val_acc": 0.1, "train_acc": 0.1, "lr": config["lr"],
                 "epoch_time_s": 1.0, "images_per_s": 100.0, "ended_at": 1000 + e} for e, v in enumerate(losses, 1)]
        trials.append(TrialOutcome(tid, Status.INTERRUPTED if tid in unfinished else Status(status), config,
                                   dict(hist[-1]), hist, None, 2.0, error))
    return SweepRun(trials, "/nowhere", StopReason.CTRL_C if unfinished else None)


def _fake_ray(mp, sweeps: dict) -> None:
    from sweep import ray_adapter
    from sweep.outcome import SweepRun

    for var in ("WANDB_SILENT", "WANDB_DIR", "WANDB_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        mp.setenv(var, os.environ.get(var, ""))  # restored afterwards, whatever the pipeline sets
    mp.setattr(ray_adapter, "start", lambda *a, **k: {"cpu": 2.0, "gpu": 0.0, "nodes": 1})
    mp.setattr(ray_adapter, "experiment_exists", lambda path: True)
    # Tune's saved state, read back before resuming: none of its trials ended yet, so the sweep runs (resumed)
    mp.setattr(ray_adapter, "load_run", lambda spec, storage: SweepRun([], "/nowhere", None))
    # A SweepRun, or a function of the run's listener that plays trial events to it and returns one.
    mp.setattr(ray_adapter, "run_sweep",
               lambda *a, **k: sweeps["run"](k["listener"]) if callable(sweeps["run"]) else sweeps["run"])


def _main(folder, npz, extra) -> int:
    from sweep import cli

    (folder / "space.yaml").write_text(FIXED_SPACE.format(name="pf", n=len(TRIALS)))
    try:
        return cli.main(["--space", str(folder / "space.yaml"), "--data", npz, "--results-dir",
                         str(folder / "results"), *extra])
    except SystemExit as exc:
        return exc.code


@pytest.fixture(scope="module")
def finished(tmp_path_factory, synth_npz):
    """A results folder as a finished sweep leaves it (made once; tests work on copies)."""
    tmp = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        _fake_ray(mp, {"run": _fake_run()})
        assert _main(tmp, synth_npz, ["--wandb", "off"]) == 0
    return tmp / "results" / "pf"


@pytest.fixture
def orchestrate(monkeypatch, tmp_path, synth_npz):
    """Run orchestrator.py's main here with a fake Ray; returns (exit status, stdout, stderr, results folder)."""
    sweeps = {}
    _fake_ray(monkeypatch, sweeps)

    def run(*extra, capsys, sweep=None):
        sweeps["run"] = sweep or _fake_run()
        rc = _main(tmp_path, synth_npz, extra)
        out = capsys.readouterr()
        return rc, out.out, out.err, tmp_path / "results" / "pf"

    return run


def _whole(path) -> bool:
    """The file is complete: it parses as what its name says."""
    if path.endswith(".json"):
        json.load(open(path))
    elif path.endswith(".pt"):
        torch.load(path, weights_only=True)
    elif path.endswith(".png"):
        data = open(path, "rb").read()
        assert data.startswith(b"\x89PNG") and data.rstrip().endswith(b"IEND\xaeB`\x82")
    elif path.endswith((".csv", ".md")):
        assert open(path).read().endswith("\n")
    return True


def _files(folder) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(folder) for n in names}


def _disk_full_at(monkeypatch, name):
    from trainables import atomic

    real = atomic.atomic_path

    @contextlib.contextmanager
    def atomic_path(path):
        with real(path) as tmp:
            yield tmp
            if os.path.basename(os.fspath(path)) == name:
                with open(tmp, "rb+") as f:
                    f.truncate(os.path.getsize(tmp) // 2)  # half of it reached the disk, then it was full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "atomic_path", atomic_path)


OUTPUTS = ["sweep.json", "trials.csv", "history.csv", "best.json", "model_seed0.pt", "metrics.json", "curves.png",
           "params.png", "report.md"]


@pytest.mark.parametrize("name", OUTPUTS)
def test_disk_full_at_each_output(name, finished, orchestrate, capsys, tmp_path):
    folder = tmp_path / "results" / "pf"
    shutil.copytree(finished, folder)
    assert {"sweep.json", "trials.csv", "history.csv", "best.json", "final/model_seed0.pt", "final/metrics.json",
            "plots/curves.png", "plots/params.png", "report.md"} <= set(_files(folder))
    if name == "model_seed0.pt":
        os.unlink(folder / "final" / "model_seed0.pt")  # so that the retrain runs again and saves it
    before = _files(folder)
    with pytest.MonkeyPatch.context() as full:
        _disk_full_at(full, name)
        rc, out, err, folder = orchestrate("--wandb", "off", "--resume", capsys=capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: '{folder}") and f"{name}': No space left on device" in lines[0], lines[0]
    assert lines[0].endswith("--resume"), lines[0]  # how to go on once there is space
    after = _files(folder)
    target = next((k for k in before if os.path.basename(k) == name), None)
    if target:
        assert after[target] == before[target]  # the previous file, not half of the new one
    for rel in before:
        assert rel in after and _whole(os.path.join(folder, rel)), rel
    assert not [k for k in after if k.endswith(".tmp")]
    if name in ("trials.csv", "model_seed0.pt"):  # space again: the same command finishes
        rc, out, err, folder = orchestrate("--wandb", "off", "--resume", capsys=capsys)
        assert rc == 0, err


def test_tune_returning_unfinished_trials_is_an_interruption(orchestrate, capsys):
    """Ray Tune's own Ctrl-C handler makes fit() return normally, with trials still running."""
    rc, out, err, folder = orchestrate("--wandb", "off", capsys=capsys, sweep=_fake_run(unfinished=["t0"]))
    assert rc == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("--wandb off --resume"), err
    assert "Finished trials are saved" in err and "interrupted with 2 of 3 trials finished" in out
    assert not (folder / "trials.csv").exists() and not (folder / "best.json").exists()


def test_ctrl_c_during_the_retrain_then_resume(orchestrate, capsys):
    from sweep import retrain

    real = retrain.train_one

    def interrupted(cfg, data, ckpt_path, *a, **k):
        def stop_after_first_epoch(m, *rest):
            if m["epoch"] == 1:
                raise KeyboardInterrupt
        return real(cfg, data, ckpt_path, stop_after_first_epoch)

    with pytest.MonkeyPatch.context() as ctrl_c:
        ctrl_c.setattr(retrain, "train_one", interrupted)
        rc, out, err, folder = orchestrate("--wandb", "off", capsys=capsys)
    assert rc == 130 and err.strip().splitlines()[-1].endswith("--resume"), err
    assert (folder / "best.json").is_file() and (folder / "final" / "retrain_seed0.ckpt").is_file()
    epoch1 = torch.load(folder / "final" / "retrain_seed0.ckpt", weights_only=True)["history"]
    rc, out, err, folder = orchestrate("--wandb", "off", "--resume", capsys=capsys)
    assert rc == 0, err
    saved = torch.load(folder / "final" / "model_seed0.pt", weights_only=True)
    assert saved["history"][:1] == epoch1  # epoch 1 kept from before the Ctrl-C, not trained again
    assert not (folder / "final" / "retrain_seed0.ckpt").exists()


def test_wandb_that_cannot_be_imported(orchestrate, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    rc, out, err, folder = orchestrate("--wandb", "offline", capsys=capsys)
    assert rc == 0, err
    assert "wandb could not be imported" in out and "tracking is off" in out
    assert (folder / "report.md").is_file() and not (folder / "wandb").exists()


def test_results_folder_is_copied_whole(tmp_path):
    """(_files and _whole are what the checks above rest on.)"""
    (tmp_path / "a.json").write_text("{}")
    shutil.copy(tmp_path / "a.json", tmp_path / "b.json")
    assert _files(tmp_path) == {"a.json": b"{}", "b.json": b"{}"} and _whole(str(tmp_path / "a.json"))


def test_a_final_model_that_learnt_nothing_still_gets_its_robustness_report(tmp_path):
    """Clean accuracy 0 (one retrain epoch on a hard set): the OOD/clean ratio is n/a, not a crash after the
    retrain that lost final/metrics.json (found by tests/test_faults.py)."""
    import numpy as np

    from robustness.measure import accuracy_table
    from robustness.ood import DL4DS_ORDER
    from robustness.report import write_report

    result = accuracy_table(np.zeros((len(DL4DS_ORDER), 10), np.int64), np.ones(2, np.int64), DL4DS_ORDER, 0.0)
    paths = write_report(result, str(tmp_path))
    assert "OOD / clean = n/a" in open(paths["markdown"]).read()


def _errored_run(failures, stop_reason=None):
    """The three trials, each errored with its Failure (None: interrupted by the stop)."""
    from sweep.outcome import Status, SweepRun, TrialOutcome

    trials = [TrialOutcome(f"t{i}", Status.INTERRUPTED if f is None else Status.ERRORED, config, {}, [], None, 1.0,
                           f.message if f else "", f) for i, ((config, *_), f) in enumerate(zip(TRIALS, failures))]
    return SweepRun(trials, "/nowhere", stop_reason)


def _failures(*kinds):
    from sweep.outcome import Failure

    user = {"WeightsError", "DataError"}
    return [Failure(f"{k}: injected {k.lower()}", k, k in user) for k in kinds]


def test_a_sweep_whose_every_trial_errored_exits_3_saying_why(orchestrate, capsys):
    run = _errored_run(_failures("RuntimeError", "MemoryError", "RuntimeError"))
    rc, out, err, folder = orchestrate("--wandb", "off", capsys=capsys, sweep=run)
    lines = err.strip().splitlines()
    assert rc == 3 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == (f"error: no trial produced a model: 3 of 3 trials errored, 2 of them with: RuntimeError: "
                        f"injected runtimeerror. Every trial's status and error: {folder / 'trials.csv'}")
    assert (folder / "trials.csv").is_file() and (folder / "report.md").is_file()
    assert not (folder / "best.json").exists() and not (folder / "final").exists()


def test_the_api_outcome_says_there_is_no_model(monkeypatch, tmp_path, synth_npz):
    from sweep.api import SweepRequest, run_sweep

    _fake_ray(monkeypatch, {"run": _errored_run(_failures("DivergedError", "DivergedError", "RuntimeError"))})
    (tmp_path / "space.yaml").write_text(FIXED_SPACE.format(name="pf", n=len(TRIALS)))
    out = run_sweep(SweepRequest(space=str(tmp_path / "space.yaml"), overrides={"data.path": synth_npz},
                                 results_dir=str(tmp_path / "results"), wandb="off"))
    assert out.started and not out.finished and not out.interrupted and out.best is None
    assert out.no_model.startswith("no trial produced a model: 3 of 3 trials errored, 2 of them with: DivergedError")


@pytest.mark.parametrize("kinds,stopped", [
    (("WeightsError", "WeightsError"), True),  # the same user mistake in the whole first batch: stop
    (("DivergedError", "DivergedError"), False),  # diverging is the config's fate, not a mistake: go on
    (("WeightsError", "DataError"), False),  # two different errors: not "every trial will"
    (("RuntimeError", "RuntimeError"), False),  # a crash (out of memory, a lost worker) is not the user's
], ids=["same-user-error", "diverged", "differing", "crash"])
def test_fail_fast_only_on_the_same_user_mistake(orchestrate, capsys, monkeypatch, kinds, stopped):
    from sweep import ray_adapter
    from sweep.outcome import Status

    stops = []
    monkeypatch.setattr(ray_adapter, "request_stop", stops.append)
    first = _failures(*kinds)

    def sweep(listener):  # the first batch (max_concurrent 2) ends as `kinds`; the third trial runs only if not stopped
        for i, failure in enumerate(first):
            listener.on_start(f"t{i}", {})
            listener.on_end(f"t{i}", Status.ERRORED, {}, failure)
        third = None if stops else _failures("RuntimeError")[0]
        return _errored_run([*first, third], stops[0] if stops else None)

    rc, out, err, folder = orchestrate("--wandb", "off", capsys=capsys, sweep=sweep)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert (folder / "trials.csv").is_file() and (folder / "report.md").is_file()
    if stopped:
        assert rc == 2 and [str(s) for s in stops] == ["user-error"]
        assert lines[0].startswith("error: the first 2 trials all failed with the same mistake, which every trial "
                                   "would make: WeightsError: injected weightserror.") and \
            lines[0].endswith("--wandb off --resume"), lines[0]
        rows = {r["trial_id"]: r["status"] for r in read_csv(folder / "trials.csv")}
        assert rows == {"t0": "errored", "t1": "errored", "t2": "interrupted"}
    else:
        assert rc == 3 and not stops and "no trial produced a model: 3 of 3 trials errored" in lines[0]


def test_fail_fast_waits_for_the_whole_first_batch():
    from sweep.fail_fast import FailFast
    from sweep.outcome import Status

    stops = []
    watch = FailFast(first=4, stop=stops.append)
    mistake = _failures("DataError")[0]
    for i in range(3):
        watch.on_end(f"t{i}", Status.ERRORED, {}, mistake)
        assert not stops  # 4 at a time: the 4th to end still runs, and might succeed
    watch.on_end("t3", Status.ERRORED, {}, mistake)
    assert [str(s) for s in stops] == ["user-error"] and watch.failure == mistake
    late = FailFast(first=2, stop=stops.append)
    late.on_end("a", Status.COMPLETED, {"val_acc": 0.1}, "")
    late.on_end("b", Status.ERRORED, {}, mistake)
    late.on_end("c", Status.ERRORED, {}, mistake)
    assert len(stops) == 1  # decided once, by the first two: one of them succeeded


def test_a_retrain_that_diverges_is_no_model_not_a_finished_run(orchestrate, capsys, monkeypatch):
    from sweep import retrain
    from trainables.errors import DivergedError

    def diverges(*a, **k):
        raise DivergedError(1, 5, float("nan"))

    monkeypatch.setattr(retrain, "train_one", diverges)
    rc, out, err, folder = orchestrate("--wandb", "off", capsys=capsys)
    lines = err.strip().splitlines()
    assert rc == 3 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: the retrain of trial t0's config diverged (loss became nan at epoch 1, step 5")
    assert (folder / "best.json").is_file() and (folder / "report.md").is_file()
    assert not (folder / "final" / "metrics.json").exists() and not (folder / "submission_ood.csv").exists()


def test_library_warnings_in_the_driver_go_to_the_log(orchestrate, capsys):
    """What libraries raise in the driver while the trials run (Ray's deprecations, Optuna's experimental features)
    and during the retrain (matplotlib's log records) goes to logs/warnings.log, not the console; the warning filters
    and the loggers are as they were once the run ends."""
    import logging
    import warnings

    from sweep import library_log, retrain

    def sweep(listener):
        warnings.warn("a library's DeprecationWarning while the trials run", DeprecationWarning, stacklevel=1)
        warnings.warn("a library's UserWarning while the trials run", UserWarning, stacklevel=1)
        return _fake_run()

    real = retrain.train_one

    def train_one(*args, **kwargs):
        logging.getLogger("matplotlib.font_manager").warning("a matplotlib log record during the retrain")
        return real(*args, **kwargs)

    filters, show = list(warnings.filters), warnings.showwarning
    handlers = {n: list(logging.getLogger(n).handlers) for n in library_log.LOGGERS}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retrain, "train_one", train_one)
        rc, out, err, folder = orchestrate("--wandb", "off", capsys=capsys, sweep=sweep)
    assert rc == 0, err
    log = (folder / library_log.LOG).read_text()
    for said in ("DeprecationWarning while the trials run", "UserWarning while the trials run",
                 "a matplotlib log record during the retrain"):
        assert said in log and said not in out + err, said
    assert all(line.startswith("[sweep] ") for line in out.splitlines() if line.strip())
    assert warnings.filters == filters and warnings.showwarning is show
    assert {n: logging.getLogger(n).handlers for n in library_log.LOGGERS} == handlers
