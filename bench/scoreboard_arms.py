"""The scoreboard's arms and presets as data, and how one arm x seed becomes a search space orchestrator.py runs.

Every arm is a YAML file generated from a part file (search_spaces/partN.yaml) plus overrides, in three layers:
  1. the preset's scale, the same for every arm: trial and retrain epochs (and every setting counted in epochs,
     scaled with them), the model, the machine's resources, the data size;
  2. the arm's own row (ARMS): what makes it that arm;
  3. the seed: sampler, model initialisation and retrain seeds.
The number of trials of a sweep arm is then chosen so that its expected epochs (sweep.plan's count, ASHA's cut
included) plus its retrain epochs x seeds equal the preset's budget: equal compute, counted in epochs.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sweep.plan import make_plan  # noqa: E402
from sweep.space import load_space  # noqa: E402

PART_FILES = {k: os.path.join(ROOT, "search_spaces", f"part{k}.yaml") for k in (1, 2, 3)}

# The seed student's recipes, as written in ../shared/seed/ (summarised in ../shared/CHALLENGE.md): what the
# "alone" arms train, one model for the whole budget, predicting plainly (no TTA, no ensemble).
RECIPES = {
    1: dict(model="simple_cnn", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5.0e-4, batch_size=128,
            scheduler="step", step_size=10, gamma=0.1, crop_padding=4, hflip=True),
    2: dict(model="resnet18_cifar", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5.0e-4, batch_size=128,
            scheduler="cosine", crop_padding=4, hflip=True),
    # AdamW 1e-4, OneCycleLR, label smoothing 0.1, mixup 0.4, AutoAugment (CIFAR10 policy), on the offline
    # ImageNet backbone part3.yaml enqueues it on. Left out: its ColorJitter (strength not written down).
    3: dict(model="efficientnet_lite0", pretrained=True, optimizer="adamw", lr=1.0e-4, weight_decay=1.0e-2,
            batch_size=128, scheduler="onecycle", pct_start=0.3, label_smoothing=0.1, mixup_alpha=0.4,
            auto_augment="autoaugment", crop_padding=4, hflip=True),
}
SEED_EPOCHS = 50  # the seed trained 50 epochs; its StepLR(10) is used as written up to that, else stretched


def recipe_for(part: int, budget: int, changes: dict) -> dict:
    """The recipe for `budget` epochs: StepLR every 10 epochs as written (4-5 phases in <= 50 epochs); over 50
    epochs the step is stretched to budget/5, the seed's 5 phases (a literal 10 would decay lr to 1e-26)."""
    r = {**RECIPES[part], **changes}
    if r["scheduler"] == "step" and budget > SEED_EPOCHS:
        r["step_size"] = max(1, round(budget / 5))
    return r


@dataclass(frozen=True)
class Ctx:
    """What an arm's row may depend on."""

    trial_epochs: int
    budget: int
    seed: int


@dataclass(frozen=True)
class Arm:
    label: str
    # Alone arms: the changes to the seed's recipe ({} = as written). None: a sweep arm.
    recipe: dict | None = None
    # Sweep arms: YAML overrides of the part file (dotted key -> value), as `--set` takes them.
    sets: Callable[[Ctx], dict] = lambda c: {}
    what: str = ""  # one line for the table's legend


# What "tool, best" adds to the tool's defaults: the options measured best on the proxies (BENCHMARKS.md). Trial
# scheduler: ASHA with 3 brackets ("Trial schedulers": the best mean validation and corrupted-test accuracy, within
# the seeds' spread of one bracket, for more epochs). Final model: the seed ensemble ("Final model") is already
# part1.yaml's default (the small presets retrain one model for every arm: Preset.retrain_models). Or per run:
# --arm-set tool_best:KEY=VALUE.
TOOL_BEST: dict = {"trial_scheduler.brackets": 3}

# No early stopping: the trial-scheduler table's fifo (every trial trains every epoch). Before that table the same
# was ASHA with its grace period at the last epoch, {"fixed.epochs": E, "asha.grace_period": E} (one rung at max_t).
def no_early_stopping(c: Ctx) -> dict:
    return {"trial_scheduler.type": "fifo"}

ARMS: dict[str, Arm] = {
    "alone": Arm("alone", recipe={},
                 what="the seed's recipe as written, one model trained for the whole budget, plain prediction"),
    "alone_tuned": Arm("alone, tuned by hand", recipe={"scheduler": "cosine", "label_smoothing": 0.1},
                       what="the same + what a tutorial suggests: cosine schedule, label smoothing 0.1"),
    "for_loop": Arm("for-loop", sets=lambda c: {"sampler.type": "random", **no_early_stopping(c)},
                    what="random configs of the part file's space, no early stopping, best one retrained "
                         "(the part file's ranking, retrain and TTA: the tool without its search strategy)"),
    "tool_default": Arm("tool, default", sets=lambda c: {},
                        what="the part file as shipped, scaled only in epochs and trials"),
    "tool_best": Arm("tool, best", sets=lambda c: dict(TOOL_BEST),
                     what="the tool with the scheduler and final-model options measured best (TOOL_BEST)"),
}


@dataclass(frozen=True)
class Preset:
    """How big the scoreboard runs. None = the part file's own value."""

    parts: tuple = (1,)
    seeds: tuple = (0, 1, 2)
    arms: tuple = tuple(ARMS)
    model: str | None = None  # every arm trains this model (the part file's model choices restricted to it)
    trial_epochs: int | None = None  # fixed.epochs of a sweep trial; settings counted in epochs scale with it
    retrain_epochs: int | None = None
    # Models the final retrain makes (None: the part file's seeds). The small presets retrain one: part1.yaml's 3-seed
    # ensemble would take 30 of the CPU run's 40 epochs and leave every sweep 2 trials (its gain at equal trials is in
    # BENCHMARKS.md, "Final model").
    retrain_models: int | None = None
    budget: int | None = None  # epochs per arm; None: the tool default's expected epochs, as shipped
    subset: int = 0  # training images (stratified; 0 = all 50,000: 45,000 train + 5,000 validation)
    ood_images: int = 0  # test images per severity in the corrupted test set (0 = all 10,000)
    sets: dict = field(default_factory=dict)  # more overrides for every arm (resources, ood_val size)
    alone_cpus: float | None = None  # resources.cpu of the alone arms' one trial (None: the part file's)
    cpus: int | None = None  # orchestrator --cpus
    min_alone_acc: float = 0.0  # stop after the first alone run if its clean test accuracy is below this
    what: str = ""


CPU = dict(sets={"resources.cpu": 1, "resources.gpu": 0, "trials.max_concurrent": 2}, alone_cpus=2, cpus=2)
PRESETS: dict[str, Preset] = {
    # The 3-hour benchmark on this 2-core CPU (sizing: bench/scoreboard.py's docstring).
    "cpu": Preset(model="small_cnn", trial_epochs=6, retrain_epochs=10, retrain_models=1, budget=40, min_alone_acc=0.10,
                  **CPU,
                  what="part 1 on the whole of CIFAR-100, small_cnn, 40 epochs per arm, 3 seeds"),
    # What make test runs: two arms, one seed, a few hundred images.
    "tiny": Preset(seeds=(0,), arms=("alone", "tool_default"), model="small_cnn", trial_epochs=2, retrain_epochs=1,
                   retrain_models=1,
                   budget=4, subset=400, ood_images=100,  # 100: every CIFAR class once per block
                   sets={**CPU["sets"], "ood_val.images": 20, "ood_val.severities": [3]}, alone_cpus=1, cpus=2,
                   what="2 arms, 1 seed, 400 training images, 4 epochs per arm"),
    # A GPU: parts 1-3 with the part files as shipped (full epochs); the alone arms train as long as the tool
    # default is expected to.
    "gpu": Preset(parts=(1, 2, 3), what="parts 1-3, part files as shipped (full epochs), 3 seeds"),
    # bench/gpu_check.py's step f: part 1's arms, 1 seed, sized to a few GPU-minutes.
    "gpu-check": Preset(seeds=(0,), arms=("alone", "tool_default", "for_loop", "alone_tuned", "tool_best"),
                        trial_epochs=2, retrain_epochs=4, retrain_models=1, budget=8, ood_images=500,
                        what="part 1, 1 seed, 8 epochs per arm, a 500-image corrupted test set"),
}

EPOCH_KEYS = ("step_size", "warmup_epochs", "freeze_epochs", "swa_epochs")  # TrainConfig keys counted in epochs
AT_LEAST = {"step_size": 1}  # the others may be 0


@dataclass
class Job:
    """One arm x seed: the YAML it runs and what it is planned to spend."""

    part: int
    arm: str
    seed: int
    form: dict  # the generated search space (yaml_form)
    overrides: dict  # every override of the part file, in order: scale, arm, seed
    planned_epochs: float
    trials: int

    @property
    def key(self) -> str:
        return f"part{self.part}/{self.arm}/seed{self.seed}"


def scale_overrides(spec, preset: Preset) -> dict:
    """Layer 1 for a sweep arm: the preset's epochs, model, data size and resources over the part file."""
    out: dict = dict(preset.sets)
    if preset.subset:
        out["fixed.subset"] = preset.subset
    f = preset.trial_epochs / spec.epochs if preset.trial_epochs else 1.0
    if preset.trial_epochs:
        e = preset.trial_epochs
        out["fixed.epochs"] = e
        if _grace(spec) is not None:
            out["asha.grace_period"] = min(e, max(1, round(_grace(spec) * f)))
        for key in EPOCH_KEYS:
            if key in spec.fixed:
                out[f"fixed.{key}"] = _scaled(key, spec.fixed[key], f, e)
        for p in spec.params:
            if p.name in EPOCH_KEYS and p.type in ("int", "logint"):
                low = _scaled(p.name, p.low, f, e)
                high = max(low + 1, _scaled(p.name, p.high, f, e))
                out[f"params.{p.name}"] = {**{k: v for k, v in p.to_dict().items() if k != "step"}, "low": low,
                                           "high": high}
    if preset.retrain_epochs:
        out["retrain.epochs"] = preset.retrain_epochs
    if preset.retrain_models:
        out["retrain.seeds"] = list(range(preset.retrain_models))
    if preset.model:
        if "model" in spec.param_names:
            out["params.model"] = {"type": "choice", "values": [preset.model]}
        else:
            out["fixed.model"] = preset.model
    if preset.model or preset.trial_epochs:
        out["enqueue"] = _enqueue(spec.yaml_form()["enqueue"], preset.model, f, out)
    return out


def _grace(spec) -> int | None:
    """The early-stopping grace period as shipped; None when the part file's scheduler has none."""
    scheduler = getattr(spec, "trial_scheduler", None)  # the scheduler table (sweep/trial_schedulers), once merged
    settings = scheduler.settings if scheduler is not None else getattr(spec, "asha", None)
    return getattr(settings, "grace_period", None)


def _scaled(key: str, value: int, f: float, epochs: int) -> int:
    low = AT_LEAST.get(key, 0)
    top = epochs - 1 if key in ("warmup_epochs", "freeze_epochs", "swa_epochs") else max(low, epochs)
    return int(min(top, max(low, round(value * f))))


def _enqueue(entries: list, model: str | None, f: float, out: dict) -> list:
    """The part file's enqueued configs on the preset's model, their epoch settings scaled like the space's (and
    clipped into its scaled range); entries that became identical are kept once."""
    kept: list = []
    for entry in entries:
        e = dict(entry)
        if model and "model" in e:
            e["model"] = model
        for key in EPOCH_KEYS:
            scaled = out.get(f"params.{key}")
            if key in e and scaled:
                e[key] = min(scaled["high"], max(scaled["low"], round(e[key] * f)))
        if e not in kept:
            kept.append(e)
    return kept


def budget_for(spec, preset: Preset) -> int:
    """Epochs per arm: the preset's, or what the tool default (`spec`) is expected to spend."""
    if preset.budget:
        return preset.budget
    plan = make_plan(spec)
    return round(plan.trials * plan.epochs_per_trial + spec.retrain.epochs * len(spec.retrain.seeds))


def with_trials(spec, n: int):
    trials = dataclasses.replace(spec.trials, num_samples=n, max_concurrent=min(spec.trials.max_concurrent, n))
    return dataclasses.replace(spec, trials=trials)


def trials_for(spec, epochs: float) -> int:
    """The trial count whose planned trial-epochs (sweep.plan: the trial scheduler's own rule, simulated; with few
    trials ASHA promotes more than 1/eta, so epochs per trial depend on the count) come closest to `epochs`."""
    planned: dict[int, float] = {}

    def plan(n: int) -> float:
        if n not in planned:
            planned[n] = make_plan(with_trials(spec, n)).epochs
        return planned[n]

    n = max(1, round(epochs / make_plan(spec).epochs_per_trial))
    for _ in range(6):  # n <- epochs / (epochs per trial at n), until it settles
        nxt = max(1, round(epochs * n / plan(n)))
        if nxt == n:
            break
        n = nxt
    return min((k for k in (n - 1, n, n + 1) if k >= 1), key=lambda k: (abs(plan(k) - epochs), k))


def retrain_seeds(n_models: int, seed: int) -> list[int]:
    """Scoreboard seed N with an n-model ensemble retrains seeds n*N .. n*N+n-1 (disjoint across N)."""
    return [n_models * seed + i for i in range(n_models)]


def make_job(part: int, arm: str, seed: int, preset: Preset, data: str, ood_dir: str,
             extra: dict | None = None) -> Job:
    """The generated space of one arm x seed, checked by the project's own loader (a bad override fails here,
    before anything runs). `extra`: the --arm-set overrides of this arm."""
    path, extra = PART_FILES[part], dict(extra or {})
    shipped = load_space(path)
    scale = scale_overrides(shipped, preset)
    budget = budget_for(load_space(path, scale), preset)
    row = ARMS[arm]
    common = {"name": f"seed{seed}", "description": f"scoreboard: {row.label}, seed {seed}",
              "data.path": os.path.abspath(data), "data.ood_dir": os.path.abspath(ood_dir)}
    if row.recipe is not None:
        overrides = {**common, **_alone(part, preset, budget, seed, row.recipe), **extra}
        spec = load_space(path, overrides)
        return Job(part, arm, seed, spec.yaml_form(), overrides, float(budget), 1)
    arm_sets = {**row.sets(Ctx(preset.trial_epochs or shipped.epochs, budget, seed)), **extra}
    overrides = {**common, **scale, **arm_sets, "sampler.seed": seed, "fixed.seed": seed}
    spec = load_space(path, overrides)
    overrides["retrain.seeds"] = retrain_seeds(len(spec.retrain.seeds), seed)
    spec = load_space(path, overrides)
    retrain = spec.retrain.epochs * len(spec.retrain.seeds)
    if "trials.num_samples" not in arm_sets:  # the budget left after the retrain, in planned trial-epochs
        overrides["trials.num_samples"] = trials_for(spec, budget - retrain)
        overrides["trials.max_concurrent"] = min(spec.trials.max_concurrent, overrides["trials.num_samples"])
        spec = load_space(path, overrides)
    plan = make_plan(spec)
    return Job(part, arm, seed, spec.yaml_form(), overrides, plan.trials * plan.epochs_per_trial + retrain,
               plan.trials)


def _alone(part: int, preset: Preset, budget: int, seed: int, changes: dict) -> dict:
    """Layer 1-3 for an alone arm: a one-trial "sweep" of the recipe for the whole budget. Its one searched value is
    the recipe's own learning rate (a space searches at least one parameter); the retrain repeats the trial exactly
    (same config, seed and epochs, train split only), so it reuses the trial's model: nothing is trained twice."""
    recipe = recipe_for(part, budget, changes)
    if preset.model:
        recipe["model"] = preset.model
    lr = recipe.pop("lr")
    fixed = {**recipe, "epochs": budget, "seed": seed}
    if preset.subset:
        fixed["subset"] = preset.subset
    out = {k: v for k, v in preset.sets.items() if k.startswith(("resources.", "trials."))}
    out.update({"metric": "val_acc", "mode": "max", "fixed": fixed,
                "params": {"lr": {"type": "choice", "values": [lr]}}, "enqueue": [], "smoke": {},
                "ood_val.corruptions": [], "trial_scheduler.type": "fifo", "sampler.type": "random",
                "sampler.seed": seed, "trials.num_samples": 1, "trials.max_concurrent": 1,
                "retrain.epochs": budget, "retrain.train_on_val": False, "retrain.seeds": [seed],
                "retrain.tta": "none"})
    if preset.alone_cpus is not None:
        out["resources.cpu"] = preset.alone_cpus
    return out


def tuned_on(part: int) -> tuple[str, ...]:
    """The corruption families the part file ranks trials on (ood_val.corruptions); the rest are held out."""
    return tuple(load_space(PART_FILES[part]).ood_val.corruptions)


def describe(preset: Preset) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(preset).items()}
