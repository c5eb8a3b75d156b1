"""Search spaces: every shipped YAML loads, samples and validates; every bad file says where and why."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import pickle

import optuna
import pytest
import yaml

from sweep.space import SAMPLERS, SpaceError, load_space
from sweep.trial_schedulers import SCHEDULERS
from trainables.config import TrainConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "search_spaces", "*.yaml")))
IDS = [os.path.basename(f) for f in FILES]


def test_the_shipped_files_are_found():
    assert {"part1.yaml", "part2.yaml", "part3.yaml", "smoke.yaml"} <= set(IDS)


def sample(spec, sampler=None, n=20, enqueue=True) -> list[dict]:
    """Run a real Optuna study for n trials (ask -> define_by_run -> trial_config -> tell)."""
    study = optuna.create_study(direction=spec.mode.replace("max", "maximize").replace("min", "minimize"),
                                sampler=sampler or spec.make_sampler())
    for point in spec.points_to_evaluate if enqueue else ():
        study.enqueue_trial(point)
    seen = []
    for _ in range(n):
        trial = study.ask()
        constants = spec.define_by_run(trial)
        assert constants == dict(spec.fixed)
        check_conditions(spec, trial.params)
        cfg = spec.trial_config({**trial.params, **constants})  # what Ray hands the trainable
        assert isinstance(cfg, TrainConfig) and cfg.data == spec.data.path
        study.tell(trial, cfg.lr * cfg.batch_size % 1.0)  # any deterministic number
        seen.append(dict(trial.params))
    return seen


def check_conditions(spec, params: dict) -> None:
    values = dict(spec.fixed)
    for p in spec.params:  # parents first
        active = all(values.get(k) in allowed for k, allowed in p.when.items())
        assert (p.name in params) == active, (p.name, params)
        if active:
            assert p.contains(params[p.name]), (p.name, params[p.name])
            values[p.name] = params[p.name]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_file_loads_samples_and_validates(path):
    spec = load_space(path)
    assert spec.source_path == os.path.abspath(path)
    # Every scheduler's max_t is spec.epochs (the adapter passes it), and no settings hold a copy that could disagree
    assert spec.param_names and spec.epochs == spec.fixed["epochs"]
    assert all("max_t" not in {f.name for f in dataclasses.fields(k.settings)} for k in SCHEDULERS.values())
    seen = sample(spec, n=25)
    assert seen[: len(spec.enqueue)] == spec.points_to_evaluate  # the seed's recipes run first
    for point in spec.points_to_evaluate:
        check_conditions(spec, point)
    json.dumps(spec.to_dict())
    assert pickle.loads(pickle.dumps(spec)) == spec  # Ray pickles the searcher, and with it define_by_run


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_smoke_variant(path):
    spec = load_space(path)
    smoke = load_space(path, smoke=True)
    assert smoke.smoke_applied and not spec.smoke_applied and smoke.name == spec.name + "-smoke"
    assert smoke.epochs <= 2 and smoke.trials.num_samples <= 6 and smoke.trial_scheduler.settings.grace_period == 1
    assert smoke.fixed.get("subset", 0) and smoke.resources.gpu == 0
    assert smoke.param_names == spec.param_names
    sample(smoke, n=8)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_yaml_form_round_trips(path, tmp_path):
    spec = load_space(path)
    again = tmp_path / os.path.basename(path)
    again.write_text(yaml.safe_dump(spec.yaml_form(), sort_keys=False))
    assert dataclasses.replace(load_space(again), source_path=spec.source_path) == spec


@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_every_sampler_type(kind):
    for package in SAMPLERS[kind].needs:
        pytest.importorskip(package)
    spec = load_space(os.path.join(ROOT, "search_spaces", "part2.yaml"),
                      {"sampler.type": kind, "sampler.n_startup_trials": 3, "sampler.seed": 7})
    sampler = spec.make_sampler()
    assert type(sampler).__name__.lower().startswith({"tpe": "tpe", "random": "random", "cmaes": "cmaes",
                                                      "gp": "gp", "nsga2": "nsgaii"}[kind])
    # model-based suggestions after the random start (one GP fit costs ~1 s on a CPU)
    sample(spec, sampler, n=4 if kind == "gp" else 8, enqueue=False)


def test_seeded_sampler_repeats_itself():
    spec = load_space(os.path.join(ROOT, "search_spaces", "part1.yaml"))
    assert sample(spec, n=12) == sample(spec, n=12)


def test_tpe_is_multivariate_and_grouped():
    sampler = load_space(os.path.join(ROOT, "search_spaces", "smoke.yaml")).make_sampler()
    assert sampler._multivariate is True and sampler._group is True  # group: needed for conditional spaces


def test_overrides_apply_and_are_validated():
    path = os.path.join(ROOT, "search_spaces", "smoke.yaml")
    spec = load_space(path, {"trials.num_samples": "8", "data.path": "somewhere/c.npz", "fixed.seed": 3,
                             "data.ood_dir": None})
    assert spec.trials.num_samples == 8 and spec.fixed["seed"] == 3
    assert spec.data.path == os.path.abspath("somewhere/c.npz")
    with pytest.raises(SpaceError, match=r"smoke\.yaml: trials\.num_samples: 0 .*set by an override"):
        load_space(path, {"trials.num_samples": 0})
    with pytest.raises(SpaceError, match=r"trials\.num_sample: unknown key.*did you mean 'num_samples'"):
        load_space(path, {"trials.num_sample": 3})
    with pytest.raises(SpaceError, match=r"override name\.x\.y: name is 'smoke', not a mapping"):
        load_space(path, {"name.x.y": 1})


def test_relative_data_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    src = tmp_path / "spaces" / "s.yaml"
    src.parent.mkdir()
    src.write_text(open(os.path.join(ROOT, "search_spaces", "smoke.yaml")).read())
    monkeypatch.chdir(tmp_path)
    spec = load_space("spaces/s.yaml", {"data.path": "d/c.npz"})
    assert spec.data.path == str(tmp_path / "d" / "c.npz")
    assert spec.data.ood_dir == str(tmp_path / "data" / "ood-test")
    assert spec.with_data_path("e").data.path == str(tmp_path / "e")


def test_trial_config_rejects_foreign_keys():
    spec = load_space(os.path.join(ROOT, "search_spaces", "smoke.yaml"))
    good = {"lr": 0.01, "batch_size": 64, "scheduler": "step", "step_size": 2}
    assert spec.trial_config(good).step_size == 2
    for bad, match in [({**good, "momentun": 0.5}, "momentun"), ({**good, "epochs": 9}, "differs from fixed"),
                       ({**good, "scheduler": "cosine"}, "inactive parameter step_size"),
                       ({"lr": 0.01, "batch_size": 64, "scheduler": "step"}, "lacks step_size")]:
        with pytest.raises(SpaceError, match=match):
            spec.trial_config(bad)


def test_spec_is_frozen():
    spec = load_space(os.path.join(ROOT, "search_spaces", "smoke.yaml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"
    with pytest.raises(TypeError):
        spec.fixed["epochs"] = 3


def test_a_space_error_is_one_line_and_exit_2_in_every_cli(tmp_path, capsys):
    """A SpaceError is the user's to fix: the CLIs' one front end (trainables.cli.run) prints it alone, status 2."""
    from trainables import cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nmetric: val_acc\nparams: {lr: {type: loguniform, low: 1.0, high: 0.1}}\n")
    status = cli.run(lambda: load_space(bad))
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(f"error: {bad}: params.lr.high")


# --- bad files: each names the file, the key path and the bad value ------------------------------

BASE = """\
name: t
metric: val_acc
mode: max
fixed: {model: simple_cnn, epochs: 10, optimizer: sgd}
params:
  lr: {type: loguniform, low: 1.0e-3, high: 0.3}
  batch_size: {type: choice, values: [64, 128]}
  scheduler: {type: choice, values: [cosine, step]}
  step_size: {type: int, low: 2, high: 8, when: {scheduler: step}}
sampler: {type: tpe, seed: 0}
asha: {grace_period: 2, reduction_factor: 3}
trials: {num_samples: 4, max_concurrent: 2}
resources: {cpu: 1, gpu: 0}
retrain: {enabled: true, epochs: 12, seeds: [0]}
enqueue:
  - {lr: 0.1, batch_size: 128, scheduler: step, step_size: 4}
"""


def edit(path: str, value):
    """A case that sets (or, with DELETE, removes) one dotted key of BASE."""
    def apply(raw: dict) -> dict:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return raw
    return apply


DELETE = object()
BAD = [  # (id, an edit of BASE or raw YAML text, the key path, the bad value as shown)
    ("syntax", "name: t\nparams: {lr: [1, 2\n", "t.yaml:3:1", "YAML syntax error"),
    ("duplicate-key", BASE + "metric: val_loss\n", "t.yaml:17", "'metric' appears twice"),
    ("not-a-mapping", "- a\n- b\n", "t.yaml", "['a', 'b']"),
    ("empty-file", "", "t.yaml", "null"),
    ("unknown-top", edit("sampel", {}), "sampel", "did you mean 'sampler'"),
    ("unknown-nested", edit("asha.grace", 2), "asha.grace", "did you mean 'grace_period'"),
    ("unknown-param", edit("params.lrr", {"type": "uniform", "low": 0, "high": 1}), "params.lrr", "did you mean 'lr'"),
    ("unknown-fixed", edit("fixed.modell", "x"), "fixed.modell", "did you mean 'model'"),
    ("wrong-type", edit("trials.num_samples", "many"), "trials.num_samples", "'many'"),
    ("low-ge-high", edit("params.lr.low", 0.5), "params.lr.high", "0.3"),
    ("log-low-zero", edit("params.lr.low", 0), "params.lr.low", "0"),
    ("logint-low-zero", edit("params.step_size", {"type": "logint", "low": 0, "high": 8}), "params.step_size.low", "0"),
    ("empty-choice", edit("params.batch_size.values", []), "params.batch_size.values", "[]"),
    ("duplicate-choice", edit("params.batch_size.values", [64, 128, 64]), "params.batch_size.values[2]", "64"),
    ("choice-out-of-range", edit("params.batch_size.values", [64, 0]), "params.batch_size.values[1]", "0"),
    ("unknown-model", edit("fixed.model", "resnet99"), "fixed.model", "'resnet99'"),
    ("fixed-out-of-range", edit("fixed.momentum", 1.5), "fixed.momentum", "1.5"),
    ("high-out-of-range", edit("params.lr.high", 20), "params.lr.high", "20"),
    ("fixed-and-searched", edit("fixed.lr", 0.1), "params.lr", "both fixed and searched"),
    ("float-dist-on-int", edit("params.batch_size", {"type": "uniform", "low": 8, "high": 64}),
     "params.batch_size.type", "'uniform'"),
    ("unknown-dist", edit("params.lr.type", "log-uniform"), "params.lr.type", "'log-uniform'"),
    ("bad-step", edit("params.step_size.step", 4), "params.step_size.step", "4"),
    ("condition-missing", edit("params.step_size.when", {"sched": "step"}), "params.step_size.when.sched", "'sched'"),
    ("condition-bad-value", edit("params.step_size.when", {"scheduler": "stepp"}),
     "params.step_size.when.scheduler", "'stepp'"),
    ("condition-numeric", edit("params.step_size.when", {"lr": 0.1}), "params.step_size.when.lr", "loguniform"),
    ("condition-cycle", [edit("params.scheduler.when", {"batch_size": 64}),
                         edit("params.batch_size.when", {"scheduler": "step"})],
     ".when", "form a cycle: batch_size -> scheduler"),
    ("num-samples-0", edit("trials.num_samples", 0), "trials.num_samples", "0"),
    ("concurrent-0", edit("trials.max_concurrent", 0), "trials.max_concurrent", "0"),
    ("grace-gt-epochs", edit("asha.grace_period", 11), "asha.grace_period", "11"),
    ("reduction-lt-2", edit("asha.reduction_factor", 1), "asha.reduction_factor", "1"),
    ("negative-gpu", edit("resources.gpu", -1), "resources.gpu", "-1"),
    ("unknown-sampler", edit("sampler.type", "bayes"), "sampler.type", "'bayes'"),
    ("unknown-metric", edit("metric", "val_accuracy"), "metric", "did you mean 'val_acc'"),
    ("bad-mode", edit("mode", "maximize"), "mode", "'maximize'"),
    ("mode-against-metric", edit("metric", "val_loss"), "mode", "worst trial"),
    ("enqueue-unknown-key", edit("enqueue.0.momentum", 0.5), "enqueue[0].momentum", "'momentum'"),
    ("enqueue-out-of-range", edit("enqueue.0.lr", 0.5), "enqueue[0].lr", "0.5"),
    ("enqueue-bad-choice", edit("enqueue.0.batch_size", 32), "enqueue[0].batch_size", "32"),
    ("enqueue-condition", edit("enqueue.0.scheduler", "cosine"), "enqueue[0].step_size", "scheduler='cosine'"),
    ("enqueue-fixed-differs", edit("enqueue.0.epochs", 3), "enqueue[0].epochs", "3"),
    ("epochs-searched", edit("params.epochs", {"type": "int", "low": 2, "high": 9}), "params.epochs", "max_t"),
    ("bad-tta", edit("retrain.tta", "mirror"), "retrain.tta", "flip_shift (10x inference)"),
    ("data-under-fixed", edit("fixed.data", "x.npz"), "fixed.data", "data.path"),
    ("bad-name", edit("name", "my sweep"), "name", "'my sweep'"),
    ("no-params", edit("params", {}), "params", "{}"),
    ("pretrained-simple", edit("fixed.pretrained", True), "fixed.pretrained", "simple_cnn"),
    ("seeds-repeat", edit("retrain.seeds", [1, 1]), "retrain.seeds", "[1, 1]"),
    ("smoke-breaks", edit("params.warmup_epochs", {"type": "int", "low": 0, "high": 3}),
     "params.warmup_epochs.high", "in smoke mode"),
    ("smoke-bad-value", edit("smoke.trials", {"num_samples": -2}), "smoke.trials.num_samples", "-2"),
    ("smoke-unknown-key", edit("smoke.fixd", {}), "smoke.fixd", "did you mean 'fixed'"),
    ("smoke-fixes-searched", edit("smoke.fixed", {"lr": 0.1}), "smoke.fixed.lr", "smoke.params.lr"),
]


def _write(tmp_path, case) -> str:
    path = tmp_path / "t.yaml"
    if not isinstance(case, str):
        raw = yaml.safe_load(BASE)
        for apply in case if isinstance(case, list) else [case]:
            raw = apply(raw)
        case = yaml.safe_dump(raw, sort_keys=False)
    path.write_text(case)
    return str(path)


def test_base_is_valid(tmp_path):
    spec = load_space(_write(tmp_path, BASE))
    assert spec.param_names and spec.epochs == spec.fixed["epochs"]


@pytest.mark.parametrize("case,key,value", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_file(tmp_path, case, key, value):
    path = _write(tmp_path, case)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(path) and key in message and value in message, message


def test_searched_values_are_checked_in_pairs(tmp_path):
    """nesterov=true needs sgd: searching both must fail at load, not in trial 7 of the sweep."""
    path = _write(tmp_path, [edit("fixed.optimizer", DELETE),
                             edit("params.optimizer", {"type": "choice", "values": ["sgd", "adamw"]}),
                             edit("params.nesterov", {"type": "choice", "values": [False, True]})])
    with pytest.raises(SpaceError, match=r"t\.yaml: params\.nesterov: nesterov=true together with "
                                         r"optimizer='adamw' is not a valid config: nesterov=true needs"):
        load_space(path)


def test_exponent_without_dot_is_a_number(tmp_path):
    path = _write(tmp_path, BASE.replace("low: 1.0e-3", "low: 1e-3").replace("{lr: 0.1,", "{lr: 1e-1,"))
    assert yaml.safe_load(open(path))["params"]["lr"]["low"] == "1e-3"  # what PyYAML does
    spec = load_space(path)
    assert spec.params[0].low == 0.001 and spec.enqueue[0]["lr"] == 0.1


def test_missing_file_suggests_a_neighbour():
    with pytest.raises(SpaceError, match=r"part4\.yaml: cannot read.*did you mean 'part\d\.yaml'"):
        load_space(os.path.join(ROOT, "search_spaces", "part4.yaml"))


def test_static_condition_on_a_fixed_key(tmp_path):
    path = _write(tmp_path, BASE.replace("optimizer: sgd", "scheduler: cosine").replace(
        "  scheduler: {type: choice, values: [cosine, step]}\n", "").replace(", scheduler: step, step_size: 4", ""))
    spec = load_space(path)
    assert "step_size" in spec.param_names
    assert all("step_size" not in p for p in sample(spec, n=5))  # condition false: never searched


def test_smoke_defaults_never_enlarge_the_sweep(tmp_path):
    path = _write(tmp_path, [edit("fixed.subset", 240), edit("fixed.epochs", 1), edit("asha.grace_period", 1),
                             edit("trials.num_samples", 3), edit("retrain.seeds", [5, 6])])
    smoke = load_space(path, smoke=True)
    assert smoke.fixed["subset"] == 240 and smoke.epochs == 1 and smoke.trials.num_samples == 3
    assert smoke.retrain.seeds == (5,)


# --- precedence: file < smoke: section < explicit overrides ------------------------------------------

SMOKE = os.path.join(ROOT, "search_spaces", "smoke.yaml")


def test_explicit_overrides_beat_the_smoke_section():
    """--smoke-test --num-samples 6 runs 6 trials: the smoke: section sets 4, the flag wins."""
    assert yaml.safe_load(open(SMOKE))["smoke"]["trials"]["num_samples"] == 4  # the section does set it
    assert load_space(SMOKE, smoke=True).trials.num_samples == 4
    flags = {"trials.num_samples": 6, "fixed.epochs": 2, "retrain.epochs": 2, "asha.grace_period": 2}
    smoke = load_space(SMOKE, flags, smoke=True)
    assert (smoke.trials.num_samples, smoke.epochs, smoke.retrain.epochs,
            smoke.trial_scheduler.settings.grace_period) == (6, 2, 2, 2)
    assert smoke.smoke_applied and smoke.name == "smoke-smoke"
    renamed = load_space(SMOKE, {"name": "mine"}, smoke=True)
    assert renamed.name == "mine-smoke"  # a smoke run's results never land in the real sweep's folder


def test_cli_flags_reach_the_loader_and_win_in_smoke_mode():
    """The command line as a user types it: flags and --set become overrides that beat smoke:."""
    from sweep import cli

    args = cli.build_parser().parse_args(["--space", SMOKE, "--smoke-test", "--num-samples", "6",
                                          "--set", "trials.max_concurrent=1", "--set", "fixed.subset=2000"])
    spec = load_space(SMOKE, cli._overrides(args), smoke=args.smoke_test)
    assert (spec.trials.num_samples, spec.trials.max_concurrent, spec.fixed["subset"]) == (6, 1, 2000)


def test_smoke_defaults_give_way_to_overrides(tmp_path):
    """A file without a smoke: section still shrinks (defaults), and an override still wins over them."""
    path = _write(tmp_path, BASE)
    assert load_space(path, smoke=True).trials.num_samples == 4 and load_space(path, smoke=True).epochs == 2
    assert load_space(path, {"fixed.epochs": 5}, smoke=True).epochs == 5


def test_an_override_that_breaks_smoke_mode_says_so(tmp_path):
    """BASE trains 10 epochs, its smoke mode 2: a grace period of 3 fits the sweep, not its smoke mode."""
    path = _write(tmp_path, BASE)
    with pytest.raises(SpaceError, match=r"asha\.grace_period: 3 is more than fixed\.epochs \(2\).*set by an "
                                         r"override, in smoke mode"):
        load_space(path, {"asha.grace_period": 3})


# --- samplers: one table --------------------------------------------------------------------------------

def test_an_unknown_sampler_lists_the_allowed_ones(tmp_path):
    with pytest.raises(SpaceError) as info:
        load_space(_write(tmp_path, edit("sampler.type", "bayes")))
    message = str(info.value)
    assert "\n" not in message and "sampler.type" in message and "'bayes'" in message
    assert all(name in message for name in SAMPLERS)


def test_a_hand_made_spec_with_an_unknown_sampler_fails_instead_of_becoming_another():
    spec = load_space(SMOKE)
    bogus = dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, type="bogus"))
    with pytest.raises(SpaceError, match="bogus.*allowed: " + ", ".join(SAMPLERS)):
        bogus.make_sampler()


# --- which epoch stands for a trial: select ---------------------------------------------------------------

@pytest.mark.parametrize("select", ["last_epoch", "best_epoch"])
def test_select(tmp_path, select):
    assert load_space(_write(tmp_path, BASE)).select == "last_epoch"  # the retrain trains to the last epoch
    spec = load_space(_write(tmp_path, edit("select", select)))
    assert spec.select == select and spec.to_dict()["select"] == select


# --- multi-objective ----------------------------------------------------------------------------------

TWO = [{"metric": "ood_val_acc", "mode": "max"}, {"metric": "val_acc", "mode": "max"}]
OOD = {"corruptions": ["gaussian_noise", "fog"], "images": 100}


def _multi(tmp_path, objectives=TWO, sampler="tpe", **more):
    cases = [edit("metric", DELETE), edit("mode", DELETE), edit("objectives", objectives), edit("ood_val", OOD),
             edit("sampler.type", sampler), *(edit(k, v) for k, v in more.items())]
    return _write(tmp_path, cases)


@pytest.mark.parametrize("sampler", [k for k, v in SAMPLERS.items() if v.multi_objective])
def test_multi_objective_space_samples_a_real_multi_objective_study(tmp_path, sampler):
    for package in SAMPLERS[sampler].needs:
        pytest.importorskip(package)
    spec = load_space(_multi(tmp_path, sampler=sampler, pick="val_acc"))
    assert spec.objectives == (("ood_val_acc", "max"), ("val_acc", "max"))
    assert (spec.metric, spec.mode) == ("ood_val_acc", "max")  # the first objective: what ASHA stops by
    assert spec.pick == "val_acc" and spec.pick_objective == ("val_acc", "max")
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=spec.make_sampler())
    for i in range(6 if sampler == "gp" else 10):
        trial = study.ask()
        constants = spec.define_by_run(trial)  # before reading trial.params: suggesting fills them
        cfg = spec.trial_config({**trial.params, **constants})
        study.tell(trial, [cfg.lr, (i * 7) % 5 / 10])
    assert study.best_trials  # a Pareto front
    d = spec.to_dict()
    assert d["metric"] == "ood_val_acc" and [o["metric"] for o in d["objectives"]] == ["ood_val_acc", "val_acc"]
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(spec.yaml_form(), sort_keys=False))
    assert dataclasses.replace(load_space(again), source_path=spec.source_path) == spec


def test_pick_defaults_to_the_first_objective(tmp_path):
    spec = load_space(_multi(tmp_path))
    assert spec.pick == "ood_val_acc" and spec.pick_objective == spec.objectives[0]


def test_speed_objectives(tmp_path):
    goals = [{"metric": "val_acc", "mode": "max"}, {"metric": "epoch_time_s", "mode": "min"}]
    spec = load_space(_write(tmp_path, [edit("metric", DELETE), edit("mode", DELETE), edit("objectives", goals)]))
    assert spec.objectives == (("val_acc", "max"), ("epoch_time_s", "min"))


MULTI_BAD = [  # (id, extra edits of _multi's file, key path, what the message shows)
    ("unknown-metric", {"objectives": [TWO[0], {"metric": "test_acc", "mode": "max"}]},
     "objectives[1].metric", "'test_acc'"),
    ("mode-missing", {"objectives": [TWO[0], {"metric": "val_acc"}]}, "objectives[1].mode", "is required"),
    ("metric-missing", {"objectives": [{"mode": "max"}]}, "objectives[0].metric", "is required"),
    ("both", {"metric": "val_acc"}, "metric", "not both"),
    ("mode-and-objectives", {"mode": "max"}, "mode", "not both"),
    ("wrong-direction", {"objectives": [TWO[0], {"metric": "val_loss", "mode": "max"}]},
     "objectives[1].mode", "worst trial"),
    ("repeated", {"objectives": [TWO[1], TWO[1]]}, "objectives[1].metric", "twice"),
    ("speed-first", {"objectives": [{"metric": "images_per_s", "mode": "max"}, TWO[1]]},
     "objectives[0].metric", "ASHA"),
    ("empty", {"objectives": []}, "objectives", "[]"),
    ("unknown-key", {"objectives": [{**TWO[0], "weight": 2}, TWO[1]]}, "objectives[0].weight", "'weight'"),
    ("pick-not-an-objective", {"pick": "val_loss"}, "pick", "'val_loss'"),
    ("single-objective-sampler", {"sampler": "cmaes"}, "sampler.type", "cmaes optimises one objective"),
    ("bad-select", {"select": "best"}, "select", "'best'"),
]


@pytest.mark.parametrize("more,key,shown", [c[1:] for c in MULTI_BAD], ids=[c[0] for c in MULTI_BAD])
def test_bad_multi_objective_file(tmp_path, more, key, shown):
    path = _multi(tmp_path, **more)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}:") and shown in message and "\n" not in message, message


def test_ood_objective_needs_an_ood_val_section(tmp_path):
    path = _write(tmp_path, [edit("metric", DELETE), edit("mode", DELETE), edit("objectives", TWO)])
    with pytest.raises(SpaceError, match=r"objectives\[0\]\.metric: ood_val_acc needs ood_val\.corruptions"):
        load_space(path)


def test_pick_needs_several_objectives(tmp_path):
    with pytest.raises(SpaceError, match=r"t\.yaml: pick: .*one metric"):
        load_space(_write(tmp_path, edit("pick", "val_acc")))


def test_bad_multi_objective_file_exits_2_with_one_line(tmp_path):
    """Through the real command line: one line on stderr, exit status 2, before Ray starts."""
    import subprocess
    import sys

    path = _multi(tmp_path, objectives=[TWO[0], {"metric": "val_acc"}])
    run = subprocess.run([sys.executable, os.path.join(ROOT, "orchestrator.py"), "--space", path, "--wandb", "off",
                          "--results-dir", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "objectives[1].mode" in lines[0] and "Traceback" not in run.stderr, run.stderr


# --- one coercion, one key: the loader and TrainConfig agree -------------------------------------------

ACCEPTED = [("hflip", 1), ("hflip", "on"), ("hflip", "1"), ("hflip", "no"), ("weight_decay", "1e-3"),
            ("weight_decay", 1), ("step_size", "3"), ("step_size", 4.0)]
REJECTED = [("hflip", 2), ("hflip", "maybe"), ("step_size", 2.5), ("weight_decay", "abc"), ("weight_decay", True),
            ("model", 3), ("weight_decay", 10**400), ("step_size", float("inf")), ("seed", 10**30)]


@pytest.mark.parametrize("key,value,accepted", [(*c, True) for c in ACCEPTED] + [(*c, False) for c in REJECTED],
                         ids=[f"{k}={v!r}"[:30] for k, v in ACCEPTED + REJECTED])
def test_yaml_values_are_coerced_exactly_as_train_config_coerces_them(tmp_path, key, value, accepted):
    """One coercion (TrainConfig's): "1" is true in a YAML file, a --set and a trial config alike."""
    from trainables.errors import ConfigError

    path = _write(tmp_path, [edit("params.step_size", DELETE), edit("enqueue", DELETE),
                             edit("params.scheduler.values", ["cosine"])])
    if accepted:
        want = getattr(TrainConfig.from_dict({key: value}), key)
        got = load_space(path, {f"fixed.{key}": value}).fixed[key]
        assert got == want and type(got) is type(want)
        return
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({key: value})
    assert info.value.key == key
    with pytest.raises(SpaceError, match=rf"t\.yaml: fixed\.{key}: .*set by an override"):
        load_space(path, {f"fixed.{key}": value})


CONFIG_ERRORS = [  # (raw config, the key ConfigError names)
    ({"lrr": 0.1}, "lrr"), ({"model": "resnet99"}, "model"), ({"lr": 20}, "lr"), ({"epochs": "x"}, "epochs"),
    ({"nesterov": True, "optimizer": "adamw"}, "nesterov"), ({"weights_path": "w.pt"}, "weights_path"),
    ({"pretrained": True}, "pretrained"), ({"warmup_epochs": 5, "epochs": 3}, "warmup_epochs"),
]


@pytest.mark.parametrize("raw,key", CONFIG_ERRORS, ids=[c[1] for c in CONFIG_ERRORS])
def test_config_error_carries_its_key_through_pickling(raw, key):
    from trainables.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(raw)
    assert info.value.key == key
    again = pickle.loads(pickle.dumps(info.value))  # Ray ships trial errors between processes
    assert again.key == key and str(again) == str(info.value)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_checking_a_space_imports_neither_torch_nor_ray(path):
    """A bad YAML file or flag answers at once (exit 2 in a tenth of a second): the checks read the model table
    and the TTA views, not torch; Ray starts only once every input is checked."""
    import subprocess
    import sys

    code = (f"import sys; from sweep.space import load_space; load_space({path!r}, {{}}); "
            f"load_space({path!r}, {{}}, smoke=True); print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
