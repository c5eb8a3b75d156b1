"""The Python API under orchestrator.py: a typed request in, a typed outcome out. The CLI maps the outcome to
exit codes; benchmarks and tests call `run_sweep` directly.

    from sweep.api import SweepRequest, run_sweep
    out = run_sweep(SweepRequest(space="search_spaces/smoke.yaml", overrides={"data.path": "cifar100.npz"}))
    out.finished, out.folder, out.best["value"]

Bad input raises `trainables.errors.UserError` (one line for a person), also when the first trials all make the
same config/data/weights mistake (the sweep is stopped there, resumably); nothing is printed but progress. A run
that ends without a model says why in `no_model`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .outcome import StopReason


@dataclass(frozen=True)
class SweepRequest:
    space: str  # the YAML search space
    overrides: dict = field(default_factory=dict)  # dotted YAML key -> value; beats the YAML and its smoke section
    smoke: bool = False  # apply the YAML's smoke section
    results_dir: str = "results"
    resume: bool = False
    address: str | None = None  # an existing Ray cluster; None starts Ray on this machine
    storage: str | None = None  # shared storage for a multi-node cluster
    wandb: str = "offline"  # off | offline | online
    retrain: bool = True
    robustness: bool = True  # the robustness report of the final model on generated corruptions
    cpus: int | None = None  # CPUs of the local Ray
    time_limit_s: float | None = None  # stop (resumably) before this many seconds have passed
    job_s: float | None = None  # a batch job's length, for the plan ("= N jobs of 2h")
    warm_start: tuple[str, ...] = ()  # earlier sweeps' results folders whose trials the sampler learns from
    warm_start_top: int = 3  # how many of their best configs run first (sweep/warm_start.py)
    plan_only: bool = False  # print the plan and stop before Ray starts
    status_every_s: float = 30.0
    command: str = ""  # the exact command, recorded in every artifact


@dataclass(frozen=True)
class SweepOutcome:
    folder: str
    started: bool  # a results folder exists that --resume continues
    finished: bool  # every trial ended (and retrain, submission and report are written)
    stop_reason: StopReason | None = None  # why the run stopped before the end
    best: dict | None = None  # best.json's content, once written
    trials: int = 0  # trials that ended
    planned: int = 0
    no_model: str = ""  # why the run produced no model (every trial errored or ended without a finite metric,
    # the retrain diverged): one line; the report and trials.csv are written, the CLI exits 1

    @property
    def interrupted(self) -> bool:
        return not self.finished and self.stop_reason is not None


def run_sweep(request: SweepRequest) -> SweepOutcome:
    from . import pipeline

    return pipeline.run(request)
