"""Helpers for the tests that run whole sweeps through orchestrator.py (a tiny space on synthetic data)."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPACE = """
name: {name}
metric: val_loss  # continuous: ASHA's rung comparisons never tie
mode: min
fixed:
  model: small_cnn
  epochs: 4
  subset: 240
  val_fraction: 0.25
  crop_padding: 0
  device: cpu
  precision: fp32
  eval_batch_size: 256
params:
  lr: {{type: loguniform, low: 1.0e-4, high: 0.1}}
  batch_size: {{type: choice, values: [32, 64]}}
  scheduler: {{type: choice, values: [cosine, step]}}
  step_size: {{type: int, low: 1, high: 3, when: {{scheduler: step}}}}
sampler: {{type: tpe, seed: 0, n_startup_trials: 4}}
asha: {{grace_period: 1, reduction_factor: 2}}
trials: {{num_samples: {n}, max_concurrent: 2}}
resources: {{cpu: 1, gpu: 0}}
retrain: {{enabled: true, epochs: 2, train_on_val: true, seeds: [0]}}
ood_val: {{corruptions: [gaussian_noise, contrast], severities: [2], images: 20, test_images: 10}}
enqueue:
  - {{lr: 1.0e-4, batch_size: 64, scheduler: cosine}}
"""


RETRAIN = "retrain: {{enabled: true, epochs: 2, train_on_val: true, seeds: [0]}}"


def write_space(tmp_path, name="e2e", n=8, retrain: str | None = None) -> str:
    """retrain: another retrain: line (e.g. seeds and test-time augmentation)."""
    text = SPACE if retrain is None else SPACE.replace(RETRAIN, retrain.replace("{", "{{").replace("}", "}}"))
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.format(name=name, n=n))
    return str(path)


def orchestrate(*args, timeout=600, env=None):
    cmd = [sys.executable, os.path.join(ROOT, "orchestrator.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


FINISHED = re.compile(r"\[sweep\] trial (\w+) (?:completed|stopped early by [\w ]+) after")


def run_until(cmd, stop_at: int | None = None, sig=None, timeout: float = 420) -> tuple[int, str]:
    """Run in its own session; after `stop_at` trials have finished, send `sig` (SIGKILL: to the whole session)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines, finished, t0 = [], 0, time.time()
    try:
        for line in proc.stdout:
            lines.append(line)
            if stop_at is not None and FINISHED.search(line):
                finished += 1
                if finished == stop_at:
                    if sig == signal.SIGKILL:
                        os.killpg(proc.pid, sig)
                        break
                    proc.send_signal(sig)
                    stop_at = None
            if time.time() - t0 > timeout:
                break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, "".join(lines)
