"""wandb unavailable in every way a machine can make it so: the sweep runs and says what it does instead.

(The whole-sweep check, `--wandb online` with no key, is in tests/test_faults.py.)
"""
from __future__ import annotations

import sys

import pytest

from sweep import tracking

KEY = "k" * 40


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize("case, mode, says", [
    ("online, no key", "offline", "no wandb API key was found"),
    ("online, key, no network", "offline", "127.0.0.1:9 cannot be reached"),
    ("online, wandb not installed", "off", "wandb could not be imported"),
    ("offline, wandb not installed", "off", "tracking is off"),
    ("offline", "offline", ""),
    ("off", "off", ""),
])
def test_what_is_asked_and_what_happens(env, tmp_path, case, mode, says):
    if "key," in case:
        env.setenv("WANDB_API_KEY", KEY)
        env.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port: refused at once
    if "not installed" in case:
        env.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    t = tracking.resolve(case.split(",")[0], "p", "g", str(tmp_path))
    assert t.mode == mode and says in t.note
    if mode == "offline" and says:
        assert f"wandb sync {tmp_path}/wandb/offline-run-*" in t.note
    if mode == "off":
        assert not isinstance(tracking.trial_listener(t), tracking.TrialRuns)  # no wandb thread at all
        tracking.log_run(t, "retrain-seed0", {}, [], {})  # nothing to do, nothing raised


def test_a_failing_wandb_does_not_lose_the_retrain(env, tmp_path, capsys):
    import wandb

    def init(**kw):
        raise wandb.errors.CommError("Timed out while retrying")

    env.setattr(wandb, "init", init)
    t = tracking.Tracking("online", "", "p", "g", str(tmp_path))
    tracking.log_run(t, "retrain-seed0", {"lr": 0.1}, [{"epoch": 1, "val_acc": 0.5}], {"test_acc": 0.5})
    err = capsys.readouterr().err
    assert "wandb could not log retrain-seed0" in err and "results/ has everything" in err


def test_trial_runs_are_written_offline_one_per_trial(env, tmp_path):
    from sweep.outcome import Status

    t = tracking.resolve("offline", "p", "g", str(tmp_path))
    runs = tracking.trial_listener(t)
    for tid in ("a1", "b2"):
        runs.on_start(tid, {"lr": 0.1})
        runs.on_result(tid, {"epoch": 1, "val_acc": 0.25, "note": "text is not logged"})
    runs.on_end("a1", Status.COMPLETED, {}, "")
    runs.close(interrupted=False)
    made = sorted(p.name for p in (tmp_path / "wandb").glob("offline-run-*"))
    assert len(made) == 2 and not runs.thread.is_alive()


def test_a_hanging_wandb_never_holds_up_a_ctrl_c(env, tmp_path, monkeypatch):
    """Ray's WandbLoggerCallback made Ctrl-C wait up to 30 minutes for wandb; the queue thread is left after
    2 s when interrupted, and every call before that returned at once."""
    import threading
    import time

    import wandb

    release = threading.Event()
    monkeypatch.setattr(wandb, "init", lambda **kw: release.wait(60))
    runs = tracking.TrialRuns(tracking.Tracking("offline", "", "p", "g", str(tmp_path)))
    t0 = time.time()
    runs.on_start("a1", {})
    runs.on_result("a1", {"epoch": 1})
    assert time.time() - t0 < 0.5
    runs.close(interrupted=True)
    assert time.time() - t0 < 5 and runs.thread.is_alive()
    release.set()


def test_each_trial_run_is_named_by_its_trial(env, tmp_path):
    t = tracking.resolve("offline", "p", "g", str(tmp_path))
    runs = tracking.trial_listener(t)
    runs.on_start("abc12345", {"lr": 0.1})
    runs.on_result("abc12345", {"epoch": 1, "val_acc": 0.5})
    runs.close(interrupted=False)
    assert [p.name.rsplit("-", 1)[1] for p in (tmp_path / "wandb").glob("offline-run-*")] == ["abc12345"]
