"""A real sweep end to end: Ray Tune + Optuna + ASHA on small synthetic data, through orchestrator.py."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from sweep_util import ROOT, orchestrate, read_csv, write_space


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("sweep")
    # Two seeds averaged, each under flip test-time augmentation: the ensemble and TTA, end to end.
    space = write_space(tmp, retrain="retrain: {enabled: true, epochs: 2, train_on_val: true, seeds: [0, 1], "
                                     "tta: flip}")
    # A small OOD set in the DL4DS layout (19 files, 5 severities x 10 images), made by our own generator.
    gen = subprocess.run([sys.executable, "-m", "robustness.generate", "--npz", synth_npz, "--out",
                          str(tmp / "ood"), "--subset", "10"], capture_output=True, text=True, cwd=ROOT)
    assert gen.returncode == 0, gen.stderr[-2000:]
    proc = orchestrate("--space", space, "--data", synth_npz, "--results-dir", str(tmp / "results"),
                       "--wandb", "offline", "--cpus", "2", "--ood-dir", str(tmp / "ood"),
                       env={"SWEEP_PROFILE": str(tmp / "profile.jsonl")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (tmp / "console.txt").write_text(proc.stdout + "\n---stderr---\n" + proc.stderr)
    return tmp / "results" / "e2e"


def test_every_result_file_is_there(sweep_dir):
    for name in ("sweep.json", "trials.csv", "history.csv", "best.json", "report.md",
                 "plots/curves.png", "plots/params.png", "final/metrics.json", "final/model_seed0.pt"):
        assert (sweep_dir / name).is_file(), name


def test_trials_csv_is_complete_and_consistent(sweep_dir):
    rows = read_csv(sweep_dir / "trials.csv")
    assert len(rows) == 8
    assert len({r["trial_id"] for r in rows}) == 8
    hist = read_csv(sweep_dir / "history.csv")
    for r in rows:
        assert r["status"] in ("completed", "stopped_early", "errored")
        mine = [h for h in hist if h["trial_id"] == r["trial_id"]]
        assert len(mine) == int(r["epochs"])  # one history row per epoch run
        assert (r["status"] == "completed") == (int(r["epochs"]) == 4)
        assert float(r["final_val_loss"]) == pytest.approx(float(mine[-1]["val_loss"]))
        assert float(r["best_val_loss"]) == pytest.approx(min(float(h["val_loss"]) for h in mine))
        assert (r["step_size"] != "") == (r["scheduler"] == "step")  # conditional parameter
    assert any(r["status"] == "stopped_early" for r in rows)  # ASHA cut at least one
    assert min(float(r["lr"]) for r in rows) == pytest.approx(1e-4)  # the enqueued config ran


def test_trials_ran_concurrently(sweep_dir):
    hist = read_csv(sweep_dir / "history.csv")
    spans = {}
    for h in hist:
        end, took = float(h["ended_at"]), float(h["epoch_time_s"])
        lo, hi = spans.get(h["trial_id"], (end - took, end))
        spans[h["trial_id"]] = (min(lo, end - took), max(hi, end))
    s = sorted(spans.values())
    assert any(b[0] < a[1] for a, b in zip(s, s[1:])), "no two trials overlapped in time"


def test_the_start_up_leaves_the_cpu_to_ray_and_the_first_trial(sweep_dir):
    """Issue 16's start-up: the driver reads the data without torch (its import took CPU from Ray's start), Tune's
    TensorBoard logger (which imports torch) is off while its CSV and JSON records stay, and the first trial runs
    in a worker Ray started with itself, not in a process it starts when Tune asks for one."""
    events = [json.loads(line) for line in (sweep_dir.parent.parent / "profile.jsonl").read_text().splitlines()]
    fit = next(e for e in events if e["event"] == "tune_fit")
    assert fit["torch_loaded"] is False
    first = min((e for e in events if e["event"] == "trial_called"), key=lambda e: e["t"])
    assert first["process_started"] < fit["t"], "the first trial's worker was created after Tune asked for it"
    trial_dirs = [p for p in (sweep_dir / "ray" / "e2e").iterdir() if p.is_dir() and p.name.startswith("trial_")]
    assert trial_dirs and all((p / "result.json").is_file() and (p / "progress.csv").is_file() for p in trial_dirs)
    assert not list((sweep_dir / "ray").rglob("events.out.tfevents*"))


def test_best_json_is_enough_to_retrain(sweep_dir):
    best = json.loads((sweep_dir / "best.json").read_text())
    rows = read_csv(sweep_dir / "trials.csv")
    done = [r for r in rows if r["status"] == "completed"]
    assert best["trial_id"] == min(done, key=lambda r: float(r["final_val_loss"]))["trial_id"]
    for key in ("config", "seed", "commit", "data", "retrain_command", "metrics"):
        assert key in best
    assert len(best["data"]["fingerprint"]) == 64
    from trainables.config import TrainConfig

    TrainConfig.from_dict(best["config"])  # validates


def test_final_model_submission_and_report(sweep_dir):
    final = json.loads((sweep_dir / "final" / "metrics.json").read_text())
    assert 0.0 <= final["test_acc"] <= 1.0
    assert "submission_ood.csv written" in final["submission_note"]
    from robustness.submission import read_submission

    labels = read_submission(str(sweep_dir / "submission_ood.csv"), n=10)  # validates ids, order, labels
    assert labels.shape == (19, 50)
    report = (sweep_dir / "report.md").read_text()
    assert "## Leaderboard" in report and "python orchestrator.py" in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    for trial in read_csv(sweep_dir / "trials.csv"):  # every trial on the leaderboard, with its status
        assert any(trial["trial_id"] in row and trial["status"].replace("_", " ") in row.replace("_", " ")
                   for row in rows), trial["trial_id"]


def test_wandb_offline_runs_per_trial(sweep_dir):
    runs = list((sweep_dir / "wandb").glob("offline-run-*"))
    assert len(runs) >= 8 + 1  # one per trial + the retrain


def test_existing_sweep_is_not_overwritten(sweep_dir, synth_npz, tmp_path):
    space = write_space(tmp_path)
    proc = orchestrate("--space", space, "--data", synth_npz, "--results-dir", str(sweep_dir.parent))
    assert proc.returncode == 2
    assert "already holds a sweep" in proc.stderr and "Traceback" not in proc.stderr


def test_ood_aware_tuning_and_robustness_report(sweep_dir):
    hist = read_csv(sweep_dir / "history.csv")
    assert all(0.0 <= float(h["ood_val_acc"]) <= 1.0 for h in hist)  # every epoch scored on corrupted val
    robust = json.loads((sweep_dir / "robustness" / "generated" / "robustness.json").read_text())
    assert robust["tuned_on"] == ["gaussian_noise", "contrast"]
    assert len(robust["accuracy"]) == 19 and robust["n"] == 10
    assert (sweep_dir / "robustness" / "generated" / "heatmap.png").is_file()
    assert "held-out corruptions" in (sweep_dir / "report.md").read_text()


def test_only_the_best_trial_keeps_its_weights(sweep_dir):
    """A finished sweep needs no state to resume; the retrain reuses only the best trial's (disk: a ~70 MB
    state per simple_cnn trial made a 4-trial smoke sweep 304 MB)."""
    best = json.loads((sweep_dir / "best.json").read_text())
    kept = {p.parent.name.removeprefix("trial_") for p in (sweep_dir / "ray" / "e2e").glob("trial_*/checkpoint_*")}
    assert kept <= {best["trial_id"]}
    rows = read_csv(sweep_dir / "trials.csv")
    assert len(rows) == 8 and all(r["final_val_loss"] != "" for r in rows if r["status"] != "errored")


def test_a_labelled_ood_dir_is_scored(sweep_dir):
    """--ood-dir made by robustness.generate carries labels.npy: the final model gets an OOD accuracy from it."""
    final = json.loads((sweep_dir / "final" / "metrics.json").read_text())
    robust = json.loads((sweep_dir / "robustness" / "labelled" / "robustness.json").read_text())
    assert 0.0 <= final["ood_acc"]["labelled"] == robust["ood_acc"] <= 1.0
    assert len(robust["accuracy"]) == 19


def test_final_predictions_are_an_ensemble_under_tta(sweep_dir):
    final = json.loads((sweep_dir / "final" / "metrics.json").read_text())
    assert final["seeds"] == [0, 1] and final["tta"] == "flip" and len(final["per_seed"]) == 2
    assert all((sweep_dir / "final" / f"model_seed{s}.pt").is_file() for s in (0, 1))


def test_the_console_says_only_what_a_user_needs(sweep_dir):
    """Every stdout line is ours, from the start through the trials, the retrain and the report to the end; Ray's
    internals (token warning, actor restarts, slow-callback warnings, its own restore hint, status boxes) went to
    logs/ray.log, libraries' warnings (Optuna's importance, matplotlib, Ray's deprecations) to logs/, and stderr holds
    only our progress bars; the folder is said at the start and at the end."""
    out, err = (sweep_dir.parent.parent / "console.txt").read_text().split("\n---stderr---\n")
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(line.startswith("[sweep] ") for line in lines), [x for x in lines if "[sweep]" not in x][:5]
    assert any("retrain" in line for line in lines) and any("report:" in line for line in lines)
    warned = re.findall(r".*(?:Warning\b|\.py:\d+|site-packages).*", err)
    assert not warned, warned[:5]
    for noise in ("Token authentication", "_WandbLoggingActor", "may be a performance bottleneck",
                  "Tuner.restore", "Failed to fetch metrics", "Failed to push error", "╭"):
        assert noise not in out + err, noise
    assert lines[0] == f"[sweep] results folder: {sweep_dir}" and lines[-1] == lines[0]
    assert any("trial" in line and "started" in line for line in lines)
    assert (sweep_dir / "logs" / "ray.log").is_file()
