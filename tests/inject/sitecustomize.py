"""Fault injection for whole-sweep tests, with no hook in production code.

A test puts this folder first on PYTHONPATH of an orchestrator subprocess. Python imports
`sitecustomize` at start-up in every process: the driver and every Ray worker (they inherit the
driver's environment). What it does is chosen by environment variables:

- FAULT_DIR=DIR: registers fault models in `trainables.models.MODELS` once that module is imported
  (an import hook: the many Python processes Ray starts that never import it pay nothing). Every model
  built appends its kind to DIR/built.log (one line per attempt at a trial). Each is a
  small CNN that misbehaves from its second epoch on (counted in its state dict, so a retry restored from the
  checkpoint of epoch 1 misbehaves again, at once):
    fault_raise     raises RuntimeError
    fault_oom_gpu   raises torch.OutOfMemoryError (what CUDA raises)
    fault_oom_host  raises MemoryError (what a failed host allocation raises)
    fault_kill      SIGKILLs its own process, the first time only (marker file in DIR): a lost worker or node
    fault_nan       makes the loss NaN
    fault_inf       makes the loss +inf
- FAULT_ENOSPC=NAME[,NAME]: every atomic write (trainables.atomic.atomic_path) whose target's file name
  is one of NAMEs writes half a file and then fails with ENOSPC, like a full disk ('*' = every file).
- FAULT_NO_WANDB=1: `import wandb` fails, like a broken or missing install.
"""
import errno
import importlib.abc
import importlib.util
import os
import sys

HOOKS = {}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs HOOKS[name](module) right after the real module `name` is executed."""

    def find_spec(self, name, path, target=None):
        if name not in HOOKS:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            HOOKS[name](module)

        spec.loader.exec_module = exec_module
        return spec


FAULT_KINDS = ("raise", "oom_gpu", "oom_host", "kill", "nan", "inf")


def _fault_names(table):
    """The names a config may use (trainables/model_table.py: checked with no torch in the driver)."""
    for kind in FAULT_KINDS:
        table.add_name(f"fault_{kind}")


def _fault_models(models):
    import signal

    import torch
    import torch.nn as nn

    marker_dir = os.environ["FAULT_DIR"]

    class Faulty(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind
            self.features = models.SmallCNN(width=8).features
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32, models.NUM_CLASSES))
            # Epochs begun, in the state dict: a retry restored from the checkpoint of epoch 1 counts on from 1.
            self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
            with open(os.path.join(marker_dir, "built.log"), "a") as f:  # one line per attempt at this trial
                f.write(f"{kind}\n")

        def train(self, mode=True):
            if mode:
                self.epoch += 1  # the engine calls model.train() once at the start of every epoch
            return super().train(mode)

        def forward(self, x):
            out = self.classifier(self.features(x))
            if not self.training or int(self.epoch) < 2:
                return out
            if self.kind == "raise":
                raise RuntimeError("injected fault: the trial raised at its second epoch")
            if self.kind == "oom_gpu":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
            if self.kind == "oom_host":
                raise MemoryError("injected: host allocation failed")
            if self.kind == "kill":
                mark = os.path.join(marker_dir, "killed-once")
                if not os.path.exists(mark):
                    open(mark, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)
                return out
            if self.kind == "nan":
                return out * float("nan")
            if self.kind == "inf":  # every class but 0 impossible: the loss of any label but 0 is +inf
                mask = torch.full_like(out, float("-inf"))
                mask[:, 0] = 0.0
                return out + mask
            return out

    for kind in FAULT_KINDS:  # replace: the model_table hook above has added the names already
        models.register_model(f"fault_{kind}", lambda kind=kind: Faulty(kind), replace=True)


def _enospc(atomic):
    import contextlib

    names = set(os.environ["FAULT_ENOSPC"].split(","))
    real = atomic.atomic_path

    @contextlib.contextmanager
    def atomic_path(path):
        if "*" not in names and os.path.basename(os.fspath(path)) not in names:
            with real(path) as tmp:
                yield tmp
            return
        with real(path) as tmp:
            yield tmp
            # What was written so far reaches the disk half-way, then the disk is full.
            with open(tmp, "rb+") as f:
                f.truncate(os.path.getsize(tmp) // 2)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as f.write() raises it: no file name

    atomic.atomic_path = atomic_path


if os.environ.get("FAULT_DIR"):
    HOOKS["trainables.model_table"] = _fault_names
    HOOKS["trainables.models"] = _fault_models
if os.environ.get("FAULT_ENOSPC"):
    HOOKS["trainables.atomic"] = _enospc
if os.environ.get("FAULT_NO_WANDB"):
    sys.modules["wandb"] = None  # `import wandb` now raises ImportError
if HOOKS:
    sys.meta_path.insert(0, _AfterImport())
