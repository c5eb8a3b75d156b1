"""The final models: each member of the final model (the best trial, or the ensemble's members) per seed, made as
`retrain.from` says — the config retrained on train+val, the trial's own weights, or (PBT) its schedule replayed.

Each model is saved on its own as soon as it is made, and a training one checkpoints every epoch, so an interrupted
retrain continues where it stopped; a model on disk made from another trial or config (the sweep grew, and its best
changed) is made again. The retrain runs alone: its torch threads are the CPUs it was given, not a trial's share.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from trainables import atomic
from trainables.config import TrainConfig
from trainables.errors import UserError
from trainables.models import model_from_config

from . import lineage
from .data_check import DataShape, check_config
from .outcome import StopReason, StopRequested
from .plan import duration


@dataclass
class Made:
    trial_id: str
    seed: int
    weight: float  # its share of the final model's averaged probabilities
    model: torch.nn.Module
    history: list
    path: str
    config: TrainConfig


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def retrain_config(config: dict, retrain, seed: int, epochs: int | None = None) -> TrainConfig:
    """A trial's config as the retrain trains it: its seed, epochs (`epochs`, else retrain.epochs), data, threads."""
    overrides = {"seed": seed, "epochs": epochs or retrain.epochs or config.get("epochs", TrainConfig.epochs),
                 "threads": retrain.threads or cpus()}
    if retrain.train_on_val:
        overrides["val_fraction"] = 0.0
    # The trial's warm-up / head-only / averaging epochs may not fit a shorter retrain: clip them to what fits.
    n = overrides["epochs"]
    overrides["warmup_epochs"] = min(config.get("warmup_epochs", 0), n - 1)
    overrides["freeze_epochs"] = min(config.get("freeze_epochs", 0), n)
    overrides["swa_epochs"] = min(config.get("swa_epochs", 0), n - 1)
    # Cosine and one-cycle stretch with the run by themselves; StepLR counts its step in epochs, so a retrain longer
    # than the trial would decay more often (a step-2 winner retrained 10 epochs ended at lr x1e-4 by epoch 8, its
    # accuracy flat from epoch 5: BENCHMARKS.md, "Scoreboard"). Scale the step so it decays as often as the trial did.
    trial_epochs = config.get("epochs", TrainConfig.epochs)
    if config.get("scheduler") == "step" and n != trial_epochs:
        overrides["step_size"] = max(1, round(config.get("step_size", TrainConfig.step_size) * n / trial_epochs))
    return TrainConfig.from_dict(config, **overrides)


def train_one(cfg_dict: dict, data, ckpt_path: str | None, progress=None, mutated: bool = False):
    """Train one model; checkpoint every epoch to ckpt_path (when given) and resume from it. `mutated`: the
    checkpoint may have been written under other values of the mutable keys (a PBT schedule's next segment)."""
    from trainables.checkpoint import inference_weights
    from trainables.engine import train

    cfg = TrainConfig.from_dict(cfg_dict)
    state = None
    if ckpt_path and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)

    def report(metrics: dict, checkpoint: dict) -> None:
        if ckpt_path:
            atomic.torch_save(checkpoint, ckpt_path)
        if progress:
            progress(metrics, checkpoint)

    result = train(cfg, report, checkpoint=state, data=data, mutated=mutated)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True) if ckpt_path else None
    weights = inference_weights(state) if state else result.model.state_dict()
    return {k: v.cpu() for k, v in weights.items()}, result.history


class Retrain:
    """Makes the final models, one (member, seed) at a time, and says how long is left."""

    def __init__(self, folder: str, spec, best: dict, arrays, say, deadline=None, read_checkpoint=None,
                 history: list | None = None):
        self.folder, self.spec, self.best, self.arrays, self.say = folder, spec, best, arrays, say
        self.deadline, self.read_checkpoint, self.history = deadline, read_checkpoint, history or []
        self.final_dir = os.path.join(folder, "final")
        self.shape = DataShape.of(arrays, best["data"]["path"])
        self.epoch_s: list[float] = []  # measured retrain epochs, for the time left
        self.left_epochs = 0

    def models(self, members) -> list[Made]:
        os.makedirs(self.final_dir, exist_ok=True)
        retrain, seeds = self.spec.retrain, self.spec.retrain.seeds
        plans = [(m, s, self._config(m, s)) for m in members for s in (seeds if retrain.source != "trial" else
                                                                         seeds[:1])]
        for m, _, cfg in plans:  # one line before any epoch: a config the data cannot hold
            check_config(cfg, self.shape, what=f"the retrain of trial {m.trial_id}")
        self.left_epochs = sum(cfg.epochs for _, _, cfg in plans)
        out = []
        for m, seed, cfg in plans:
            share = m.weight / (len(seeds) if retrain.source != "trial" else 1)
            path = os.path.join(self.final_dir, f"model_seed{seed}.pt" if len(members) == 1 else
                                f"model_{m.trial_id}_seed{seed}.pt")
            model = model_from_config(cfg, pretrained=False)  # same stem and input wrapper as the saved state
            history = self._make(m, seed, cfg, path, model)
            self.left_epochs -= cfg.epochs
            out.append(Made(m.trial_id, seed, share, model, history, path, cfg))
        return out

    def _config(self, member, seed: int) -> TrainConfig:
        source = self.spec.retrain
        if source.source == "trial":
            return TrainConfig.from_dict(member.config)
        if source.source == "schedule":  # the schedule's own length: the epochs the trial trained
            return retrain_config(member.config, source, seed, epochs=self.spec.epochs)
        return retrain_config(member.config, source, seed)

    def _make(self, member, seed: int, cfg: TrainConfig, path: str, model) -> list:
        saved = torch.load(path, map_location="cpu", weights_only=True) if os.path.exists(path) else None
        if saved is not None and saved.get("config") == cfg.to_dict() and saved.get("trial_id", member.trial_id) == \
                member.trial_id:
            model.load_state_dict(saved["model"])
            self.say(f"final model {os.path.basename(path)}: already made (trial {member.trial_id}, seed {seed})")
            return saved["history"]
        if saved is not None:
            self.say(f"final model {os.path.basename(path)} was made from another trial or config: made again")
        source = self.spec.retrain.source
        reuse = source == "trial" or reusable_checkpoint(member, cfg)
        if reuse:
            from trainables.checkpoint import inference_weights

            if not member.checkpoint or member.status != "completed":
                raise UserError(f"retrain.from trial: trial {member.trial_id} did not train every epoch (its weights "
                                f"were not kept); use retrain.from config")
            state = self.read_checkpoint(member.checkpoint)
            weights, history = inference_weights(state), state.get("history", [])
            self.say(f"final model from trial {member.trial_id}'s own final weights"
                     + ("" if source == "trial" else ": the same config, data and epochs: not trained again"))
        elif source == "schedule":
            weights, history = self._replay(member, seed, cfg)
        else:
            weights, history = self._train(member, seed, cfg, cfg.to_dict())
        model.load_state_dict(weights)
        made = {"model": weights, "config": cfg.to_dict(), "seed": seed, "history": history,
                "trial_id": member.trial_id, "commit": atomic.git_commit(), "data": self.best["data"], "from": source}
        if reuse:  # nothing trained for it: its epochs are the trial's (benchmarks count epochs by this)
            made["from_trial"] = member.trial_id
        atomic.torch_save(made, path)
        return history

    def _replay(self, member, seed: int, cfg: TrainConfig):
        """The trial's schedule (the values its weights trained under, epoch by epoch), segment by segment: each
        segment continues the last one's checkpoint under its own values (the engine's `mutated` continuation)."""
        segments = _segments(lineage.schedule(self.history, member.trial_id), cfg.epochs)
        self.say(f"retrain seed {seed}: replaying trial {member.trial_id}'s schedule in {len(segments)} segment(s): "
                 + "; ".join(f"epochs {a}-{b} at {v}" for a, b, v in segments))
        ckpt = self._ckpt(member, seed)
        done = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] if os.path.exists(ckpt) else 0
        weights, history = None, []
        for _first, b, values in segments:
            if b <= done:  # trained before a stop: the checkpoint holds it
                continue
            seg = TrainConfig.from_dict({**cfg.to_dict(), **values}).to_dict()
            weights, history = self._train(member, seed, cfg, seg, stop_after=b, mutated=os.path.exists(ckpt))
        return weights, history

    def _ckpt(self, member, seed: int) -> str:
        many = self.spec.retrain.ensemble_top > 1
        return os.path.join(self.final_dir, f"retrain_{member.trial_id}_seed{seed}.ckpt" if many else
                            f"retrain_seed{seed}.ckpt")

    def _train(self, member, seed: int, cfg, cfg_dict: dict, stop_after: int | None = None, mutated: bool = False):
        ckpt = self._ckpt(member, seed)
        what = f"retrain seed {seed}" + (f" of trial {member.trial_id}" if self.spec.retrain.ensemble_top > 1 else "")
        self.say(f"{what}: {cfg.model}, {cfg.epochs} epochs on {'train+val' if cfg.val_fraction == 0 else 'train'}, "
                 f"{cfg.threads} torch thread(s)")
        t0 = time.time()

        def progress(m, state, total=cfg.epochs):
            self.epoch_s.append(m["epoch_time_s"])
            recent = self.epoch_s[-5:]
            left = (self.left_epochs - m["epoch"]) * sum(recent) / len(recent)  # this model's epochs, then the rest
            self.say(f"{what}: epoch {m['epoch']}/{total} train_loss {m['train_loss']:.3f} "
                     f"train_acc {100 * m['train_acc']:.1f}% ({m['epoch_time_s']:.0f}s; about {duration(left)} "
                     f"of the retrain left)")
            if self.deadline is not None and m["epoch"] < total and not self.deadline.fits(m["epoch_time_s"]):
                self.say(f"{what}: the next epoch would not end before the time limit; stopping here")
                raise StopRequested(StopReason.TIME_LIMIT)
            if stop_after is not None and m["epoch"] == stop_after < total:
                raise _Segment

        try:
            weights, history = train_one(cfg_dict, self.arrays, ckpt, progress, mutated=mutated)
        except _Segment:
            return None, torch.load(ckpt, map_location="cpu", weights_only=True)["history"]
        if os.path.exists(ckpt):
            os.unlink(ckpt)
        self.say(f"{what}: done in {time.time() - t0:.0f}s")
        return weights, history


class _Segment(Exception):
    """A replayed schedule's segment ended: its checkpoint is where the next one continues."""


def _segments(steps: list, epochs: int) -> list[tuple[int, int, dict]]:
    """(first epoch, last epoch, values) of each run of epochs that trained under the same values."""
    out: list[tuple[int, int, dict]] = []
    for epoch, values, _ in steps:
        if epoch > epochs:
            break
        if out and out[-1][2] == values and out[-1][1] == epoch - 1:
            out[-1] = (out[-1][0], epoch, values)
        else:
            out.append((epoch, epoch, values))
    if not out or out[-1][1] < epochs:  # no record of the last epochs: the last values go on
        last = out[-1][2] if out else {}
        out.append((out[-1][1] + 1 if out else 1, epochs, last))
    return out


def reusable_checkpoint(member, cfg) -> str | None:
    """The trial's checkpoint when retraining would repeat it exactly (same config incl. seed, data, epochs)."""
    if not member.checkpoint or member.status != "completed":
        return None
    ignore = ("data", "threads")  # where and how fast, not what is trained
    same = {k: v for k, v in cfg.to_dict().items() if k not in ignore} == \
        {k: v for k, v in TrainConfig.from_dict(member.config).to_dict().items() if k not in ignore}
    return member.checkpoint if same else None
