"""A sweep that cannot produce a model says so, early.

- Every config the space can produce is checked against the data before Ray starts: each misfit is one line naming
  the key, its value, what the data allows and the `--set` that fixes it; exit 2, in about a second. Run for each
  check as a real process; the printed fix is then applied and that check passes.
- Real sweeps: the first trials all failing with the same user mistake (a weights file that is not one) stop the
  sweep at once, exit 2; once the file is fixed, `--resume` finishes it. Trials that all diverge are not a user
  mistake: every one runs, and the sweep ends with exit 3 and the commonest error.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from conftest import write_npz
from sweep_util import ROOT, orchestrate, read_csv

SMOKE = os.path.join(ROOT, "search_spaces", "smoke.yaml")
INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inject")

# synth_npz: 400 training images (360 train / 40 validation at val_fraction 0.1), 100 test images.
CHECKS = {
    "subset": ([], "fixed.subset 6000: synth.npz holds 400 training images; allowed: at most 400",
               "--set fixed.subset=400"),
    "batch_size": (["--set", "fixed.subset=40"], "params.batch_size.values [32, 64]: a trial trains on 36 images",
                   "--set fixed.subset=71"),  # more images: the space stays as written
    "val_fraction": (["--set", "fixed.subset=0", "--set", "fixed.val_fraction=0"],
                     "fixed.val_fraction 0.0: the validation split is empty", "--set fixed.val_fraction=0.1"),
    "ood_val.images": (["--set", "fixed.subset=0", "--set", "ood_val.corruptions=[fog]", "--set",
                        "ood_val.images=100"], "ood_val.images 100: the validation split holds 40 images",
                       "--set ood_val.images=40"),
    "ood_val.test_images": (["--set", "fixed.subset=0", "--set", "ood_val.test_images=500"],
                            "ood_val.test_images 500: synth.npz holds 100 test images",
                            "--set ood_val.test_images=100"),
}


@pytest.mark.parametrize("check", CHECKS)
def test_a_space_the_data_cannot_hold_is_one_line_before_ray(check, synth_npz, tmp_path):
    flags, says, fix = CHECKS[check]
    t0 = time.time()
    proc = orchestrate("--space", SMOKE, "--data", synth_npz, "--results-dir", str(tmp_path), "--wandb", "off",
                       *flags)
    took = time.time() - t0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"error: {says}") and lines[0].endswith(f"Fix: {fix}"), lines[0]
    assert "Ray" not in proc.stdout and took < 15, (proc.stdout, took)  # no Ray started: a second, loosely
    from sweep.data_check import DataShape, check_space
    from sweep.space import load_space

    # The printed fix is a real fix: with it, this check passes (the next one may speak).
    fixed = dict(arg.split("=", 1) for arg in [*flags[1::2], *shlex.split(fix)[1::2]])
    spec = load_space(SMOKE, {k: yaml.safe_load(v) for k, v in fixed.items()})
    try:
        check_space(spec, DataShape(synth_npz, 400, 100, (32, 32, 3)))
    except Exception as exc:  # noqa: BLE001 - another check may still fail, not this one
        assert not str(exc).startswith(says.split(":")[0]), exc


def test_a_searched_size_names_the_end_that_does_not_fit(tmp_path):
    """A searched subset or batch size: the end of its range, or its choices, that the data cannot hold; an enqueued
    config that the fix would leave outside the space is dropped by the fix too (else the space would not load)."""
    from sweep.data_check import DataShape, check_space
    from sweep.space import load_space
    from trainables.errors import DataError

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmetric: val_acc\nfixed: {epochs: 2, subset: 100}\n"
                    "params: {batch_size: {type: choice, values: [16, 64, 128]}}\nenqueue: [{batch_size: 128}]\n")
    shape = DataShape("d.npz", 100, 10, (32, 32, 3))
    with pytest.raises(DataError, match=r"params.batch_size.values \[16, 64, 128\]: a trial trains on 90 images .* "
                                        r"Fix: --set 'params.batch_size.values=\[16, 64\]' --set 'enqueue=\[\]'$"):
        check_space(load_space(path), shape)
    path.write_text("name: s\nmetric: val_acc\nfixed: {epochs: 2, batch_size: 8}\n"
                    "params: {subset: {type: int, low: 50, high: 5000}}\n")
    with pytest.raises(DataError, match=r"params.subset.high 5000: d.npz holds 100 .* "
                                        r"Fix: --set params.subset.high=100$"):
        check_space(load_space(path), shape)


def test_images_of_another_size_are_one_line_before_ray(tmp_path, synth_arrays):
    small = {k: (v[:, ::2, ::2] if k.startswith("x") else v) for k, v in synth_arrays.items()}
    npz = write_npz(tmp_path / "16px.npz", **small)
    proc = orchestrate("--space", SMOKE, "--data", npz, "--results-dir", str(tmp_path / "r"), "--wandb", "off")
    assert proc.returncode == 2 and "its images are 16x16x3; every model here takes 32x32x3" in proc.stderr, \
        proc.stderr
    assert "Ray" not in proc.stdout


WEIGHTS_SPACE = """
name: weights
metric: val_loss
mode: min
fixed: {{model: resnet18, pretrained: true, weights_path: {weights}, epochs: 1, subset: 120, val_fraction: 0.25,
         batch_size: 30, crop_padding: 0, device: cpu, precision: fp32, threads: 1, eval_batch_size: 128}}
params:
  lr: {{type: loguniform, low: 1.0e-3, high: 1.0e-2}}
sampler: {{type: random, seed: 0}}
asha: {{grace_period: 1}}
trials: {{num_samples: 4, max_concurrent: 2}}
resources: {{cpu: 1, gpu: 0}}
retrain: {{enabled: false}}
"""


def _stopped_by_the_weights(proc) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.match(r"error: the first 2 trials all failed with the same mistake, which every trial would make: "
                    r"WeightsError: weights file", lines[0]) and lines[0].endswith("--cpus 2 --resume"), lines[0]
    assert lines[0].count("--resume") == 1


def test_the_same_user_mistake_in_the_first_trials_stops_the_sweep_and_resume_finishes_it(tmp_path, synth_npz):
    weights = tmp_path / "resnet18.pth"
    weights.write_bytes(b"not a weights file")  # a download cut short, say
    (tmp_path / "weights.yaml").write_text(WEIGHTS_SPACE.format(weights=weights))
    cmd = ["--space", str(tmp_path / "weights.yaml"), "--data", synth_npz, "--results-dir", str(tmp_path / "r"),
           "--wandb", "off", "--cpus", "2"]
    _stopped_by_the_weights(orchestrate(*cmd))
    folder = tmp_path / "r" / "weights"
    rows = read_csv(folder / "trials.csv")
    errored = [r for r in rows if r["status"] == "errored"]
    assert len(errored) == 2 and all(r["error"].startswith("WeightsError: weights file") for r in errored), rows
    assert len(rows) < 4, rows  # stopped: the other trials never ran into it

    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), weights)  # the file fixed, the command the same
    proc = orchestrate(*cmd, "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_csv(folder / "trials.csv")
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows), rows


def test_a_sweep_stopped_by_a_mistake_resumes_with_the_setting_fixed(tmp_path, synth_npz):
    """Not fixed: --resume stops again at once. The flag fixed (another weights file): no trial had finished an
    epoch, so the sweep starts again with the new setting, the failed trials' records set aside."""
    import torchvision

    bad, good = tmp_path / "bad.pth", tmp_path / "good.pth"
    bad.write_bytes(b"not a weights file")
    torch.save(torchvision.models.resnet18().state_dict(), good)
    (tmp_path / "weights.yaml").write_text(WEIGHTS_SPACE.format(weights=bad).replace("num_samples: 4",
                                                                                      "num_samples: 3"))
    cmd = ["--space", str(tmp_path / "weights.yaml"), "--data", synth_npz, "--results-dir", str(tmp_path / "r"),
           "--wandb", "off", "--cpus", "2"]
    _stopped_by_the_weights(orchestrate(*cmd))
    _stopped_by_the_weights(orchestrate(*cmd, "--resume"))
    proc = orchestrate(*cmd, "--resume", "--set", f"fixed.weights_path={good}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no trial of this sweep had finished an epoch" in proc.stdout
    folder = tmp_path / "r" / "weights"
    rows = read_csv(folder / "trials.csv")
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows), rows
    assert len(list((folder / "ray").glob("weights.before-*"))) == 1  # the failed run's records, kept


def test_a_trial_trained_once_it_saved_or_logged_an_epoch(tmp_path):
    """What decides whether a changed space may restart a sweep (else --resume refuses it, as ever)."""
    from sweep import ray_adapter

    exp = tmp_path / "exp"
    (exp / "trial_a").mkdir(parents=True)
    (exp / "trial_a" / "error.txt").write_text("WeightsError")
    (exp / "trial_a" / "result.json").write_text("")
    assert not ray_adapter.trained_anything(str(exp))
    (exp / "trial_a" / "result.json").write_text('{"epoch": 1}\n')
    assert ray_adapter.trained_anything(str(exp))
    (exp / "trial_a" / "result.json").unlink()
    (exp / "trial_a" / "checkpoint_000000").mkdir()
    assert ray_adapter.trained_anything(str(exp))


def test_a_retrain_config_the_data_cannot_hold_is_one_line(tmp_path, synth_arrays):
    """E.g. a best.json from a sweep on more data: the retrain says so before its first epoch."""
    from sweep.ensemble import Member
    from sweep.retrain import Retrain
    from sweep.space import load_space
    from trainables.data import Arrays
    from trainables.errors import DataError

    spec = load_space(SMOKE)
    config = {"model": "small_cnn", "subset": 6000, "epochs": 2, "batch_size": 32}
    best = {"trial_id": "abc", "config": config, "data": {"path": "synth.npz"}, "status": "completed"}
    with pytest.raises(DataError, match=r"^the retrain of trial abc's subset 6000: synth.npz holds 400 training "
                                        r"images; allowed: at most 400 \(0 = all of them\). "
                                        r"Fix: --set fixed.subset=400$"):
        Retrain(str(tmp_path), spec, best, Arrays(**synth_arrays), say=print).models([Member("abc", 1.0, config, None)])
    assert not list((tmp_path / "final").iterdir())  # nothing trained, nothing half-written


def test_trials_that_all_diverge_run_to_the_end_and_exit_3(tmp_path, synth_npz):
    space = tmp_path / "nan.yaml"
    space.write_text("""
name: nan
metric: val_loss
mode: min
fixed: {model: fault_nan, epochs: 2, subset: 160, val_fraction: 0.25, batch_size: 32, crop_padding: 0, device: cpu,
        precision: fp32, threads: 1, eval_batch_size: 256}
params:
  lr: {type: loguniform, low: 1.0e-3, high: 1.0e-2}
sampler: {type: random, seed: 0}
asha: {grace_period: 2}
trials: {num_samples: 3, max_concurrent: 2}
resources: {cpu: 1, gpu: 0}
retrain: {enabled: false}
""")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([INJECT, ROOT]), "FAULT_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", str(space), "--data",
                           synth_npz, "--results-dir", str(tmp_path / "r"), "--wandb", "off", "--cpus", "2"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert lines[0].startswith("error: no trial produced a model: 3 of 3 trials errored, 3 of them with: ") and \
        "DivergedError: loss became nan at epoch 2" in lines[0], lines[0]
    folder = tmp_path / "r" / "nan"
    assert (folder / "report.md").is_file() and not (folder / "best.json").exists()
    assert len(read_csv(folder / "trials.csv")) == 3  # not stopped early: a divergence is not a user mistake


def test_the_data_check_reads_a_npz_header_only(tmp_path, synth_arrays):
    """The sizes come from the array headers; anything but a .npz is left to the full read and its messages."""
    from sweep.data_check import probe

    npz = write_npz(tmp_path / "d.npz", **synth_arrays)
    shape = probe(npz)
    assert (shape.train, shape.test, shape.image) == (400, 100, (32, 32, 3))
    np.save(tmp_path / "x.npy", synth_arrays["x_train"])
    assert probe(str(tmp_path / "x.npy")) is None and probe(str(tmp_path / "missing.npz")) is None
