"""bench/scoreboard.py cannot rot: its tiny preset runs for real (two arms, one seed, 400 synthetic images, each
arm an orchestrator.py subprocess scored through its submission_ood.csv), a rerun skips what finished, and every
other preset's plan (part files 1-3 as shipped for a GPU) builds spaces the project's loader accepts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "scoreboard.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))

import scoreboard_arms as arms  # noqa: E402


def scoreboard(*args, timeout=300):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synth_npz):
    out = tmp_path_factory.mktemp("scoreboard")
    proc = scoreboard("--preset", "tiny", "--data", synth_npz, "--out", str(out))
    return proc, out, synth_npz


def test_tiny_run_scores_every_arm_through_its_submission(tiny):
    proc, out, _ = tiny
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "scoreboard.json").read_text())
    assert report["commit"] and report["machine"] and len(report["loadavg_before"]) == 3
    runs = report["runs"]
    assert set(runs) == {"part1-alone-seed0", "part1-tool_default-seed0"}
    for rec in runs.values():
        assert rec["status"] == "finished" and rec["command"].startswith("python orchestrator.py --space ")
        s = rec["scores"]
        for key in ("clean_test_acc", "ood_acc", "tuned_acc", "held_out_acc"):
            assert 0.0 <= s[key] <= 1.0, (key, s[key])
        assert s["ood_acc"] == pytest.approx(s["ood_acc_orchestrator"])  # the CSV read back = the orchestrator's score
        assert s["ood_images"] == 19 * 5 * 100
        assert s["gpu_h_p100"]["train"] > 0 and rec["wall_s"] > 0
        # kept: a reader can score the final model on any other corrupted set with the project's own loading code
        folder = out / rec["arm"] / "seed0"
        assert rec["folder"] == str(folder)
        for kept in ("best.json", "final/model_seed0.pt", "submission_ood.csv", "sweep.json"):
            assert (folder / kept).is_file(), kept
    alone, tool = runs["part1-alone-seed0"]["scores"], runs["part1-tool_default-seed0"]["scores"]
    # equal compute: alone trains its one model for the whole budget (the retrain reuses the trial's model)...
    assert alone["epochs"] == {"sweep": 4, "retrain": 0, "total": 4} and alone["tta"] == "none"
    assert alone["retrained"][0]["reused_trial"]
    # ...the tool spends its trials' epochs plus one retrain epoch, about the same budget (ASHA's cut varies)
    assert tool["epochs"]["retrain"] == 1 and 2 <= tool["epochs"]["total"] <= 5 and tool["tta"] == "flip"
    assert report["summary"]["1"]["alone"]["ood_acc"][0] == pytest.approx(alone["ood_acc"])


def test_tiny_run_writes_the_table_and_the_plot(tiny):
    _, out, _ = tiny
    md = (out / "scoreboard.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert "clean test %" in rows[0] and "held-out families %" in rows[0]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["alone", "tool, default"]
    assert "Headline" in md
    assert (out / "scoreboard.png").stat().st_size > 10_000
    space = yaml.safe_load((out / "spaces" / "part1-alone-seed0.yaml").read_text())
    assert space["fixed"]["scheduler"] == "step" and space["fixed"]["step_size"] == 10  # the seed's recipe


def test_a_rerun_skips_what_finished(tiny):
    _, out, data = tiny
    before = {p.name: p.stat().st_mtime for p in (out / "runs").iterdir()}
    proc = scoreboard("--preset", "tiny", "--data", data, "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("finished before, skipped") == 2 and "orchestrator.py --space" not in proc.stdout
    assert {p.name: p.stat().st_mtime for p in (out / "runs").iterdir()} == before


def test_a_plan_keeps_the_spaces_of_recorded_runs(tiny):
    """--plan with other settings beside finished runs writes its spaces beside theirs, never over them."""
    _, out, data = tiny
    before = {p.name: p.read_text() for p in (out / "spaces").iterdir()}
    proc = scoreboard("--preset", "tiny", "--plan", "--budget", "6", "--data", data, "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {n: (out / "spaces" / n).read_text() for n in before} == before
    assert ".plan.yaml" in proc.stdout and all((out / "spaces" / (n[:-5] + ".plan.yaml")).exists() for n in before)


@pytest.mark.parametrize("flag,value", [("--budget", "0"), ("--trial-epochs", "-1"), ("--retrain-epochs", "0"),
                                        ("--ood-images", "-5")])
def test_a_bad_number_is_one_line_exit_2(flag, value, tmp_path, synth_npz):
    proc = scoreboard("--plan", flag, value, "--data", synth_npz, "--out", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {flag} {value}: allowed: a whole number >= {1 if value != '-5' else 0}"
    assert not (tmp_path / "spaces").exists()


@pytest.mark.parametrize("preset", ["cpu", "gpu", "gpu-check"])
def test_every_preset_plans_equal_budgets_the_loader_accepts(preset, tmp_path, synth_npz):
    """--plan writes every generated space and prints every command; no arm is given more epochs than another
    beyond what rounding a trial count (or ASHA's expected cut) leaves."""
    proc = scoreboard("--preset", preset, "--plan", "--seeds", "0", "--data", synth_npz, "--out", str(tmp_path),
                      timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from sweep.space import load_space

    p = arms.PRESETS[preset]
    for part in p.parts:
        planned = {}
        for arm in p.arms:
            if arm == "tool_best" and not arms.TOOL_BEST:
                assert f"part{part}-{arm}-seed0" not in proc.stdout
                continue
            space = tmp_path / "spaces" / f"part{part}-{arm}-seed0.yaml"
            spec = load_space(str(space))  # what orchestrator.py will read
            assert spec.name == "seed0" and f"--space {space}" in proc.stdout
            planned[arm] = float(proc.stdout.split(f"part{part}-{arm}-seed0: ")[1].split(" trial(s), ")[1].split()[0])
        budget = planned["alone"]
        for arm, epochs in planned.items():
            trial = load_space(str(tmp_path / "spaces" / f"part{part}-{arm}-seed0.yaml")).epochs
            assert abs(epochs - budget) <= trial, (part, arm, epochs, budget)
