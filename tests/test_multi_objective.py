"""A multi-objective sweep end to end: YAML `objectives:` → Optuna's multi-objective sampler through OptunaSearch
(ASHA on the first objective) → the trial the YAML's `pick` names is retrained → the report shows the front."""
from __future__ import annotations

import json

import pytest
from sweep_util import orchestrate, read_csv, write_space


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, synth_npz):
    tmp = tmp_path_factory.mktemp("multi")
    path = write_space(tmp, name="multi", n=5,
                       retrain="retrain: {enabled: true, epochs: 1, train_on_val: true, seeds: [0]}")
    text = open(path).read()
    text = text.replace("metric: val_loss  # continuous: ASHA's rung comparisons never tie\nmode: min\n",
                        "objectives: [{metric: val_loss, mode: min}, {metric: ood_val_acc, mode: max}]\n"
                        "pick: ood_val_acc\n")
    text = text.replace("sampler: {type: tpe, seed: 0, n_startup_trials: 4}", "sampler: {type: nsga2, seed: 0}")
    text = text.replace("fixed:\n  model: small_cnn\n  epochs: 4", "fixed:\n  model: small_cnn\n  epochs: 2")
    assert "objectives:" in text and "nsga2" in text
    open(path, "w").write(text)
    proc = orchestrate("--space", path, "--data", synth_npz, "--results-dir", str(tmp / "results"),
                       "--wandb", "off", "--cpus", "2", "--no-robustness")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "results" / "multi", proc.stdout


def test_the_pick_objective_chooses_the_retrained_trial(sweep_dir):
    folder, out = sweep_dir
    best = json.loads((folder / "best.json").read_text())
    assert best["metric"] == "ood_val_acc" and best["mode"] == "max" and "ood_val_acc" in best["rule"]
    rows = read_csv(folder / "trials.csv")
    assert len(rows) == 5 and all("final_ood_val_acc" in r for r in rows)
    done = [r for r in rows if r["status"] == "completed"]
    top = max(float(r["final_ood_val_acc"]) for r in done)
    assert best["value"] == pytest.approx(top)  # the best by pick, among trials that trained every epoch
    assert (folder / "final" / "metrics.json").is_file()
    assert "ranked by ood_val_acc" in out


def test_the_report_shows_the_front_of_both_objectives(sweep_dir):
    folder, _ = sweep_dir
    report = (folder / "report.md").read_text()
    assert "Pareto" in report and "val_loss" in report and "ood_val_acc" in report
    spec = json.loads((folder / "sweep.json").read_text())["spec"]
    assert [o["metric"] for o in spec["objectives"]] == ["val_loss", "ood_val_acc"]
