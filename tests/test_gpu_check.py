"""bench/gpu_check.py cannot rot: `--device cpu --tiny` runs every step for real, shrunk, and its files say so.

GPU time is scarce (minutes, when there is any), so the GPU run must work the first time: this runs the
same code path on the CPU. Idle, the run takes under 3 minutes; the timeout allows for a loaded machine.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu_check.py")
CIFAR = os.path.join(ROOT, "..", "shared", "data", "cifar100.npz")
sys.path.insert(0, os.path.join(ROOT, "bench"))

from gpu_check import BUDGETS  # noqa: E402  (the step registry: every step the script has)

# What each step must have measured, by figure name and unit (the units the GPU figures will carry too).
EXPECTED = {
    "a": [("engine training", "images/s"), ("seed PIL + DataLoader (2 workers) training", "images/s"),
          ("engine / seed pipeline", "x")],
    "b": [("eager: one epoch", "s"), ("torch.compile: one epoch", "s"), ("torch.compile: first 2 steps", "s")],
    "c": [("1 trial process(es) at once: total", "images/s"), ("2 trial process(es) at once: total", "images/s"),
          ("4 trial process(es) at once: total", "images/s")],
    "d": [("OOD prediction,", "s"), ("OOD prediction speed", "images/s"), ("peak host RAM", "MB")],
    "e": [(": wall", "s"), (": inside epochs", "s"), ("sweep wall", "s")],
    "f": [(": clean test accuracy", "%"), (": corrupted test accuracy", "%"), (": epochs", "epochs"), (": wall", "s")],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    cmd = [sys.executable, SCRIPT, "--device", "cpu", "--tiny", "--out", str(out)]
    if os.path.isfile(CIFAR):
        cmd += ["--data", CIFAR]
    limit = sum(b[1] for b in BUDGETS.values()) + 120  # every --tiny budget, plus imports and writing the files
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
    return proc, out


def test_every_step_measures_real_values(tiny_run):
    proc, out = tiny_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert set(report["steps"]) == set(BUDGETS) == set(EXPECTED)
    assert report["tiny"] is True and "cpu" in report["device"].lower()
    for key, step in report["steps"].items():
        assert step["status"] == "ok", (key, step.get("error"), step.get("partial"), step["skipped"])
        assert step["seconds"] <= step["budget_s"] + 30, key  # stopped at its budget (+ the hard kill's grace)
        for fig in step["figures"]:
            assert math.isfinite(fig["value"]) and fig["value"] > 0, fig
            assert fig["device"] and fig["torch"] and fig["command"].startswith("python bench/gpu_check.py "), fig
            assert "--tiny" in fig["command"] and fig["step"] == key
        for name, unit in EXPECTED[key]:
            assert any(name in f["name"] and f["unit"] == unit for f in step["figures"]), (key, name, step["figures"])
    assert {f["model"] for f in report["steps"]["a"]["figures"]} >= {"simple_cnn", "resnet18_cifar"}
    sweep = report["steps"]["e"]["info"]
    assert sweep["exit_code"] == 0 and "search_spaces/part2.yaml" in sweep["orchestrator_command"]
    board = report["steps"]["f"]["info"]
    assert board["exit_code"] == 0
    assert board["scoreboard_command"].startswith("python bench/scoreboard.py --preset tiny")
    assert board["arms_run"] == ["alone seed 0", "tool_default seed 0"]


def test_markdown_has_a_row_per_figure(tiny_run):
    _, out = tiny_run
    report = json.loads((out / "gpu_check.json").read_text())
    rows = [ln for ln in (out / "gpu_check.md").read_text().splitlines() if ln.startswith("| ") and "---" not in ln]
    header, body = rows[0], rows[1:]
    assert "value" in header and "device" in header and "command" in header
    figures = [f for s in report["steps"].values() for f in s["figures"]]
    assert len(body) == len(figures) > 0
    assert {row.split("|")[1].strip() for row in body} == set(BUDGETS)


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, needle in ((["--steps", "xyz"], "--steps"), (["--data", str(tmp_path / "nope.npz")], "nope.npz"),
                         (["--ood-dir", str(tmp_path / "none")], "--ood-dir")):
        proc = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--tiny", "--out", str(tmp_path), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and needle in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_step_over_its_budget_is_stopped_and_recorded(tmp_path):
    """--budget d=2 is less than the step needs: it stops itself (partial) or is stopped (timed_out), never hangs."""
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--tiny", "--out", str(tmp_path), "--steps", "d",
                           "--budget", "d=2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    d = report["steps"]["d"]
    assert d["status"] in ("partial", "timed_out"), d
    assert proc.returncode == (0 if d["status"] == "partial" else 1), proc.stderr[-2000:]
    assert d["seconds"] <= 2 + 20  # the budget, plus writing the stand-in set and stopping the process
    assert all(s["status"] == "not_run" for k, s in report["steps"].items() if k != "d")
    assert "**" + d["status"] + "**" in (tmp_path / "gpu_check.md").read_text()
