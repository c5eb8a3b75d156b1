"""Property tests of the space loader: whatever a user writes, the answer is a working spec or a SpaceError."""
from __future__ import annotations

import copy
import math

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sweep.space import SpaceError, load_space
from trainables.config import SCHEDULERS, config_fields

optuna.logging.set_verbosity(optuna.logging.ERROR)
FIELDS = sorted(config_fields())
VALID = yaml.safe_load("""
name: prop
metric: val_acc
fixed: {model: simple_cnn, epochs: 6, optimizer: sgd}
params:
  lr: {type: loguniform, low: 1.0e-3, high: 0.3}
  batch_size: {type: choice, values: [64, 128]}
  mixup_alpha: {type: uniform, low: 0.0, high: 1.0, step: 0.25}
  scheduler: {type: choice, values: [cosine, step, onecycle]}
  step_size: {type: int, low: 2, high: 8, when: {scheduler: step}}
  pct_start: {type: uniform, low: 0.1, high: 0.4, when: {scheduler: [onecycle]}}
  warmup_epochs: {type: int, low: 0, high: 4, when: {scheduler: cosine}}
  randaugment_ops: {type: logint, low: 1, high: 8}
sampler: {type: random, seed: 0}
asha: {grace_period: 2, reduction_factor: 3}
trials: {num_samples: 4, max_concurrent: 2}
resources: {cpu: 1, gpu: 0}
retrain: {epochs: 8, seeds: [0, 1]}
enqueue:
  - {lr: 0.1, batch_size: 128, scheduler: step, step_size: 4}
smoke:
  params: {warmup_epochs: {high: 1}, step_size: {low: 2, high: 4}}
""")
WORDS = FIELDS + ["type", "low", "high", "step", "values", "when", "choice", "uniform", "loguniform", "int",
                  "logint", "tpe", "gp", "cmaes", "max", "min", "val_loss", "1e-3", "step", "cosine", "true",
                  "fixed", "params", "sampler", "asha", "trials", "smoke", "enqueue", "retrain", "data"]
SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.integers()
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8) | st.sampled_from(WORDS))
KEYS = st.sampled_from(WORDS) | st.text(max_size=6) | st.integers(-3, 3) | st.none() | st.booleans()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=6)


def _nodes(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nodes(v, path + (i,))


@st.composite
def mutated(draw):
    raw = copy.deepcopy(VALID)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3]))):
        nodes = list(_nodes(raw))
        path, node = draw(st.sampled_from(nodes))
        action = draw(st.sampled_from(["replace", "delete", "add", "nudge", "nudge"]))
        if action == "add" and isinstance(node, dict):
            node[draw(KEYS)] = draw(VALUES)
        elif path:
            *parents, last = path
            parent = raw
            for key in parents:
                parent = parent[key]
            if action == "delete":
                del parent[last]
            elif action == "nudge":  # a plausible edit, so that many mutants still load and get sampled
                parent[last] = draw(_nudged(node))
            else:
                parent[last] = draw(VALUES)
    return raw


def _nudged(value):
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, (int, float)):
        return st.sampled_from([value * 2, value / 2, value + 1, value - 1, -value, 0, str(value)])
    if isinstance(value, str):
        return st.sampled_from(WORDS + [value.upper(), value[:-1]])
    return VALUES


def _sample(spec, n: int) -> None:
    study = optuna.create_study(sampler=spec.make_sampler(), direction="maximize" if spec.mode == "max" else "minimize")
    for point in spec.points_to_evaluate:
        study.enqueue_trial(point)
    for i in range(n):
        trial = study.ask()
        constants = spec.define_by_run(trial)  # before reading trial.params: suggesting fills them
        spec.trial_config({**trial.params, **constants})
        study.tell(trial, float(i))


def test_the_unmutated_spec_is_valid(tmp_path):
    path = tmp_path / "prop.yaml"
    path.write_text(yaml.safe_dump(VALID))
    spec = load_space(path)
    _sample(spec, 6)
    _sample(load_space(path, smoke=True), 3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated())
def test_any_mutation_loads_and_samples_or_raises_space_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("prop") / "prop.yaml"
    try:
        text = yaml.safe_dump(raw, sort_keys=False)
    except yaml.YAMLError:
        return  # not representable as YAML: nothing a user could write
    path.write_text(text)
    try:
        spec = load_space(path)
    except SpaceError as exc:
        assert str(path) in str(exc)
        event("SpaceError")
        return
    event("loaded")
    _sample(spec, 6)
    _sample(load_space(path, smoke=True), 3)  # load_space built and checked it already: it must load


@st.composite
def numeric_space(draw):
    """One valid numeric parameter on a TrainConfig field wide enough to hold it."""
    kind = draw(st.sampled_from(["uniform", "uniform-step", "loguniform", "int", "int-step", "logint", "choice"]))
    if kind.startswith("uniform"):  # mixup_alpha: [0, 10]
        low = draw(st.integers(0, 900))  # in hundredths: steps as a user writes them (0.25, not 1/3)
        if kind == "uniform-step":
            step = draw(st.integers(1, 50))
            high = low + step * draw(st.integers(1, (1000 - low) // step))
            return "mixup_alpha", {"type": "uniform", "low": low / 100, "high": high / 100, "step": step / 100}
        low /= 100
        high = draw(st.floats(low + 1e-6, 10.0))
        return "mixup_alpha", {"type": "uniform", "low": low, "high": high}
    if kind == "loguniform":  # lr: (0, 10]
        low = draw(st.floats(1e-8, 1.0))
        return "lr", {"type": "loguniform", "low": low, "high": min(10.0, low * draw(st.floats(1.001, 1e6)))}
    if kind.startswith("int") or kind == "logint":  # step_size: [1, 10000]
        low = draw(st.integers(1, 5000))
        step = draw(st.integers(1, 50)) if kind == "int-step" else 1
        high = low + step * draw(st.integers(1, (10000 - low) // step))
        spec = {"type": "logint" if kind == "logint" else "int", "low": low, "high": high}
        return "step_size", ({**spec, "step": step} if kind == "int-step" else spec)
    values = draw(st.lists(st.sampled_from(SCHEDULERS), min_size=1, max_size=4, unique=True))
    return "scheduler", {"type": "choice", "values": values}


@settings(max_examples=60, deadline=None)
@given(space=numeric_space(), sampler=st.sampled_from(["random", "tpe"]))
def test_valid_ranges_always_sample_inside_their_bounds(tmp_path_factory, space, sampler):
    name, dist = space
    raw = {"fixed": {"epochs": 3}, "params": {name: dist}, "sampler": {"type": sampler, "n_startup_trials": 3}}
    path = tmp_path_factory.mktemp("range") / "range.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_space(path)
    study = optuna.create_study(sampler=spec.make_sampler())
    for i in range(10):
        trial = study.ask()
        spec.define_by_run(trial)
        value = trial.params[name]
        cfg = spec.trial_config(trial.params)
        assert getattr(cfg, name) == value
        if dist["type"] == "choice":
            assert value in dist["values"]
        else:
            assert dist["low"] <= value <= dist["high"], (value, dist)
            if dist["type"] in ("int", "logint"):
                assert isinstance(value, int)
            if "step" in dist:
                k = (value - dist["low"]) / dist["step"]
                assert math.isclose(k, round(k), abs_tol=1e-6), (value, dist)
        study.tell(trial, float(i % 3))


@pytest.mark.parametrize("text", ["lr: 1e-3", "lr: '1e-3'", "lr: 1.0e-3", "lr: 0.001", "lr: 1E-3"])
def test_every_spelling_of_a_small_number(tmp_path, text):
    path = tmp_path / "n.yaml"
    path.write_text(f"fixed: {{{text}}}\nparams: {{batch_size: {{type: choice, values: [64]}}}}\n")
    assert load_space(path).fixed["lr"] == 0.001


@settings(max_examples=40, deadline=None)
@given(num_samples=st.integers(1, 50), max_concurrent=st.integers(1, 8), epochs=st.integers(5, 12),
       smoke_samples=st.integers(1, 50), as_text=st.booleans())
def test_explicit_overrides_always_beat_the_smoke_section(tmp_path_factory, num_samples, max_concurrent, epochs,
                                                          smoke_samples, as_text):
    """Whatever the file and its smoke: section say, a value given explicitly (a flag or --set, as a number or
    as command-line text) is the value the sweep runs with, in smoke mode or not. (epochs >= 5: VALID searches
    warmup_epochs up to 4.)"""
    raw = copy.deepcopy(VALID)
    raw["smoke"] = {**raw["smoke"], "trials": {"num_samples": smoke_samples}, "fixed": {"epochs": 2}}
    path = tmp_path_factory.mktemp("over") / "over.yaml"
    path.write_text(yaml.safe_dump(raw))
    given_ = {"trials.num_samples": num_samples, "trials.max_concurrent": max_concurrent, "fixed.epochs": epochs}
    overrides = {k: str(v) if as_text else v for k, v in given_.items()}
    for smoke in (False, True):
        spec = load_space(path, overrides, smoke=smoke)
        assert (spec.trials.num_samples, spec.trials.max_concurrent, spec.epochs) == (num_samples, max_concurrent,
                                                                                       epochs)
    assert load_space(path, smoke=True).trials.num_samples == smoke_samples  # without them the section applies
