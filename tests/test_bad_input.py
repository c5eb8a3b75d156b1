"""Every bad input through the command lines people type: one line `error: ...` naming what and where, exit
status 2, no traceback, and nothing already in the results folder touched.

One table per front end: orchestrator.py (flags, YAML, data, OOD files, results folders), `python -m
trainables` (data, config, weights, checkpoints) and the robustness CLIs. The unit tests of the same checks
(tests/test_data.py, test_ood.py, test_models.py, test_space*.py) test the messages in detail; these test
what a person sees. They run in-process (Ray is faked: nothing here may get as far as a sweep), and a few
again as real processes at the end.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from sweep_util import ROOT, SPACE, write_space
from test_data import BAD_FILE_CASES, _bad_file, _write_cifar_root
from test_ood import make_ood_dir

CPUS = 2.0


class Case:
    """What the test hands a builder: a fresh folder and good inputs to spoil."""

    def __init__(self, tmp, synth_npz, synth_arrays):
        self.tmp, self.npz, self.arrays = tmp, synth_npz, synth_arrays

    def space(self, old: str | None = None, new: str = "", name: str = "bad") -> str:
        """The sweep tests' space; with `old`, its first `old` replaced by `new` (the damage must change it)."""
        text = SPACE.format(name=name, n=4)
        if old is not None:
            assert old and old in text and old != new, f"{old!r} -> {new!r} would not change the space"
            text = text.replace(old, new, 1)
        path = self.tmp / f"{name}-space.yaml"
        path.write_text(text)
        return str(path)

    def args(self, *extra, data=None, space=None) -> list[str]:
        return ["--space", space or self.space(), "--data", data or self.npz,
                "--results-dir", str(self.tmp / "results"), "--wandb", "off", *extra]

    def cifar(self, damage) -> str:
        root = self.tmp / "cifar"
        _write_cifar_root(root, self.arrays)
        damage(root / "cifar-100-python")
        return str(root)

    def ood(self, damage=None) -> str:
        d = make_ood_dir(self.tmp / "ood", n=4)
        if damage:
            damage(os.path.join(d, "distortion05.npy"))
        return d

    def sweep_folder(self, **manifest) -> str:
        """results/<name>/ as an earlier run left it (a sweep.json and a trials.csv)."""
        folder = self.tmp / "results" / "bad"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sweep.json").write_text(json.dumps(manifest) if manifest else "{ not json")
        (folder / "trials.csv").write_text("trial_id,status\nabc,completed\n")
        return str(folder)

    def same_sweep_json(self, **trials) -> dict:
        from sweep.pipeline.inputs import spec_hash
        from sweep.space import load_space

        spec = load_space(self.space(), {"data.path": self.npz})
        d = spec.to_dict()
        d["trials"].update(trials)
        return {"spec": d, "spec_hash": spec_hash(spec)}


def _folder(c, name, *files) -> str:
    folder = c.tmp / name
    folder.mkdir()
    for f in files:
        (folder / f).write_text("x")
    return str(folder)


def _bad_npz(kind: str, argv):
    """(builder, words) for the bad .npz `kind` of tests/test_data.py: argv(case, path) -> the command line."""
    def build(c):
        return argv(c, _bad_file(kind, c.tmp, c.arrays)[0])

    def words(c):
        return _bad_file(kind, c.tmp, c.arrays)[1] if kind != "empty_source" else ["no data"]
    return build, words


def _line_of(text: str) -> int:
    return next(i for i, line in enumerate(SPACE.splitlines(), 1) if line.startswith(text))


def _pickle_edit(name, **changes):
    def damage(base):
        with open(base / name, "rb") as f:
            d = pickle.load(f)  # the test's own file
        d.update({k.encode(): v for k, v in changes.items()})
        with open(base / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    return damage


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))


# id -> (builder(case) -> argv, words the message must contain)
ORCHESTRATOR = {
    # flags
    "unknown-flag": (lambda c: c.args("--bogus"), ["unrecognized arguments: --bogus"]),
    "no-space-flag": (lambda c: ["--data", c.npz], ["--space"]),
    "not-a-number": (lambda c: c.args("--num-samples", "many"), ["--num-samples", "invalid int"]),
    "zero-trials": (lambda c: c.args("--num-samples", "0"), ["--num-samples 0", "at least 1"]),
    "bad-choice": (lambda c: c.args("--wandb", "maybe"), ["--wandb", "invalid choice"]),
    "cpus-with-address": (lambda c: c.args("--cpus", "2", "--address", "10.0.0.5:6379"), ["--cpus", "--address"]),
    "download-into-a-file": (lambda c: c.args("--download"), ["--download", "is a file"]),
    "space-file-missing": (lambda c: c.args(space=str(c.tmp / "nope.yaml")), ["nope.yaml", "no such file"]),
    "space-is-a-directory": (lambda c: c.args(space=_folder(c, "spaces", "part1.yaml", "smoke.yml", "README.md")),
                             ["spaces is a directory", "spaces/part1.yaml, ", "spaces/smoke.yml"]),
    "space-is-a-directory-without-yaml": (lambda c: c.args(space=_folder(c, "empty", "README.md")),
                                          ["empty is a directory with no .yaml file", "search_spaces/README.md"]),
    "data-file-missing": (lambda c: c.args(data=str(c.tmp / "nope.npz")),
                          ["--data", "nope.npz", "does not exist", "--download"]),
    "results-dir-under-a-file": (lambda c: (c.tmp / "file").write_text("x") and c.args("--results-dir",
                                 str(c.tmp / "file" / "results")), ["file/results/bad", "not writable"]),
    # results folders
    "same-name-other-sweep": (lambda c: [c.sweep_folder(spec={"source_path": "other.yaml"}, spec_hash="0"),
                                         *c.args()][1:], ["already holds a sweep named 'bad'", "--resume"]),
    "resume-other-sweep": (lambda c: [c.sweep_folder(spec={"source_path": "other.yaml"}, spec_hash="0"),
                                      *c.args("--resume")][1:], ["different search space", "other.yaml"]),
    "resume-nothing": (lambda c: c.args("--resume"), ["nothing to resume", "no sweep.json"]),
    "resume-damaged-manifest": (lambda c: [c.sweep_folder(), *c.args("--resume")][1:],
                                ["sweep.json", "is not a sweep.json"]),
    "resume-more-trials": (lambda c: [c.sweep_folder(**c.same_sweep_json(num_samples=3)),
                                      *c.args("--resume")][1:], ["trials.num_samples 3, not 4", "--results-dir"]),
    # YAML
    "yaml-syntax": (lambda c: c.args(space=c.space("reduction_factor: 2}", "reduction_factor: 2")),
                    [f"bad-space.yaml:{_line_of('trials:')}:", "YAML syntax error"]),  # where PyYAML noticed
    "yaml-unknown-key": (lambda c: c.args(space=c.space("\ntrials:", "\ntrails:")),
                         ["trails", "did you mean 'trials'"]),
    "yaml-wrong-type": (lambda c: c.args(space=c.space("epochs: 4", "epochs: four")), ["epochs", "four"]),
    "yaml-impossible-range": (lambda c: c.args(space=c.space("low: 1.0e-4, high: 0.1", "low: 0.1, high: 1.0e-4")),
                              ["params.lr"]),
    "yaml-empty-choice": (lambda c: c.args(space=c.space("values: [32, 64]", "values: []")), ["params.batch_size"]),
    "yaml-condition-on-nothing": (lambda c: c.args(space=c.space("when: {{scheduler: step}}".format(),
                                                                 "when: {optimiser: sgd}")), ["optimiser"]),
    "yaml-not-a-mapping": (lambda c: (c.tmp / "list.yaml").write_text("- a\n- b\n") and
                           c.args(space=str(c.tmp / "list.yaml")), ["list.yaml"]),
    "yaml-more-cpus-than-the-machine": (lambda c: c.args(space=c.space("resources: {cpu: 1", "resources: {cpu: 64")),
                                        ["resources.cpu 64", f"{CPUS:g} CPUs"]),
    # data: every bad .npz of tests/test_data.py, then the torchvision CIFAR-100 folder
    **{f"npz-{k}": _bad_npz(k, lambda c, path: c.args(data=path)) for k in BAD_FILE_CASES if k != "empty_source"},
    "pickle-random-bytes": (lambda c: c.args(data=c.cifar(lambda b: (b / "train").write_bytes(os.urandom(5000)))),
                            ["cifar-100-python/train", "not a CIFAR-100 python pickle"]),
    "pickle-truncated": (lambda c: c.args(data=c.cifar(lambda b: _truncate(b / "test"))), ["cifar-100-python/test"]),
    "pickle-missing": (lambda c: c.args(data=c.cifar(lambda b: (b / "test").unlink())), ["test", "does not exist"]),
    "pickle-wrong-shape": (lambda c: c.args(data=c.cifar(_pickle_edit("train", data=np.zeros((4, 3000), np.uint8)))),
                           ["train", "(N, 3072)"]),
    "pickle-label-out-of-range": (lambda c: c.args(data=c.cifar(_pickle_edit("test", fine_labels=[100] * 100))),
                                  ["y_test", "0-99"]),
    "pickle-that-runs-code": (lambda c: c.args(data=c.cifar(_pickle_edit("train", data=_Evil()))),
                              ["refusing to load posix.system"]),
    # OOD files, checked before the sweep
    "ood-dir-missing": (lambda c: c.args("--ood-dir", str(c.tmp / "nowhere")), ["nowhere", "no directory"]),
    "ood-file-missing": (lambda c: c.args("--ood-dir", c.ood(os.unlink)), ["distortion05.npy", "1 of 19"]),
    "ood-file-truncated": (lambda c: c.args("--ood-dir", c.ood(lambda p: _truncate(p, 0.9))),
                           ["distortion05.npy", "truncated"]),
    "ood-file-wrong-size": (lambda c: c.args("--ood-dir", c.ood(lambda p: np.save(p, np.zeros((25, 32, 32, 3),
                                                                                              np.uint8)))),
                            ["distortion05.npy", "mixed up"]),
    "ood-file-wrong-dtype": (lambda c: c.args("--ood-dir", c.ood(lambda p: np.save(p, np.zeros((20, 32, 32, 3),
                                                                                               np.float32)))),
                             ["distortion05.npy", "float32"]),
}


@pytest.fixture
def case(tmp_path, synth_npz, synth_arrays):
    return Case(tmp_path, synth_npz, synth_arrays)


@pytest.fixture
def orchestrator(monkeypatch, tmp_path):
    """sweep.cli.main in this process, with Ray faked: a machine of 2 CPUs that must never run a sweep."""
    from sweep import cli, ray_adapter

    for var in ("WANDB_SILENT", "WANDB_DIR", "WANDB_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # restored afterwards whatever cli.main sets
    monkeypatch.setattr(ray_adapter, "start", lambda *a, **k: {"cpu": CPUS, "gpu": 0.0, "nodes": 1})
    monkeypatch.setattr(ray_adapter, "experiment_exists", lambda path: True)

    def no_sweep(*a, **k):
        raise AssertionError("bad input got as far as the sweep")

    monkeypatch.setattr(ray_adapter, "run_sweep", no_sweep)
    monkeypatch.chdir(tmp_path)
    return cli.main


def _run(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


def _digests(folder) -> dict:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def _one_clear_line(rc, err: str, words) -> None:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, err)
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("name", ORCHESTRATOR)
def test_orchestrator(name, case, orchestrator, capsys):
    build, words = ORCHESTRATOR[name]
    argv = build(case)
    words = words(case) if callable(words) else words
    results = case.tmp / "results"
    before = _digests(results) if results.exists() else {}
    rc = _run(orchestrator, argv)
    _one_clear_line(rc, capsys.readouterr().err, words)
    assert (_digests(results) if results.exists() else {}) == before  # nothing computed before is touched


def _config(c, **kw) -> str:
    path = c.tmp / "config.json"
    path.write_text(json.dumps({"model": "small_cnn", "epochs": 1, "subset": 64, "batch_size": 32,
                                "device": "cpu", "threads": 1, **kw}))
    return str(path)


def _weights(c, content) -> str:
    path = c.tmp / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return str(path)


def _resnet(c, weights) -> list[str]:
    return ["--config", _config(c, model="resnet18_cifar", pretrained=True, weights_path=weights)]


def _checkpoint(c, content, *args) -> list[str]:
    out = c.tmp / "out"
    out.mkdir(exist_ok=True)
    if isinstance(content, bytes):
        (out / "checkpoint.pt").write_bytes(content)
    else:
        torch.save(content, out / "checkpoint.pt")
    return ["--config", _config(c), *args]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# python -m trainables: id -> (builder(case) -> argv (--out is added), words)
TRAINABLES = {
    **{f"npz-{k}": _bad_npz(k, lambda c, path: ["--config", _config(c), "--data", path]) for k in BAD_FILE_CASES},
    "config-not-json": (lambda c: ["--config", str((c.tmp / "c.json").write_text("{lr: ") and c.tmp / "c.json")],
                        ["c.json", "not valid JSON"]),
    "config-not-a-mapping": (lambda c: ["--config", str((c.tmp / "c.json").write_text("[1]") and c.tmp / "c.json")],
                             ["c.json", "mapping"]),
    "config-unknown-model": (lambda c: ["--config", _config(c, model="resnet")], ["model", "resnet"]),
    "weights-missing": (lambda c: _resnet(c, str(c.tmp / "nope.pth")), ["nope.pth", "does not exist"]),
    "weights-not-torch": (lambda c: _resnet(c, _weights(c, os.urandom(3000))), ["weights.pth", "could not be read"]),
    "weights-truncated": (lambda c: _resnet(c, _weights(c, open(_weights(c, {"w": torch.zeros(1000)}), "rb")
                                                        .read()[:2000])), ["weights.pth", "could not be read"]),
    "weights-of-another-model": (lambda c: _resnet(c, _weights(c, {"conv.weight": torch.zeros(3)})),
                                 ["weights.pth", "do not match"]),
    "weights-that-run-code": (lambda c: _resnet(c, _weights(c, {"w": Evil()})), ["weights.pth", "could not be read"]),
    "out-under-a-file": (lambda c: ["--config", _config(c), "--out", str((c.tmp / "f").write_text("x") and
                                                                       c.tmp / "f" / "out")],
                         ["f/out", "Not a directory"]),
    "checkpoint-exists-no-resume": (lambda c: _checkpoint(c, {"epoch": 1}), ["checkpoint.pt", "--resume"]),
    "checkpoint-corrupt": (lambda c: _checkpoint(c, os.urandom(3000), "--resume"),
                           ["checkpoint.pt", "could not be read"]),
    "checkpoint-not-a-checkpoint": (lambda c: _checkpoint(c, {"weights": torch.zeros(2)}, "--resume"),
                                    ["checkpoint.pt", "not a training checkpoint"]),
    "checkpoint-of-another-config": (lambda c: _checkpoint(c, {"epoch": 1, "model": {}, "optimizer": {}, "history": [],
                                                               "config": {"model": "bn_cnn"}}, "--resume"),
                                     ["model='bn_cnn'", "model='small_cnn'"]),
}


@pytest.mark.parametrize("name", TRAINABLES)
def test_trainables_cli(name, case, capsys, monkeypatch):
    from trainables.__main__ import main

    monkeypatch.chdir(case.tmp)
    build, words = TRAINABLES[name]
    argv = build(case)
    if "--out" not in argv:
        argv += ["--out", str(case.tmp / "out")]
    if "--data" not in argv:
        argv += ["--data", case.npz]
    words = words(case) if callable(words) else words
    before = _digests(case.tmp / "out") if (case.tmp / "out").exists() else {}
    rc = _run(main, argv)
    _one_clear_line(rc, capsys.readouterr().err, words)
    after = _digests(case.tmp / "out") if (case.tmp / "out").exists() else {}
    assert {k: v for k, v in after.items() if k in before} == before


# The robustness CLIs: id -> (module, builder(case) -> argv, words)
ROBUSTNESS = {
    "ood-check-truncated": ("robustness.ood", lambda c: ["check", c.ood(lambda p: _truncate(p, 0.9))], ["truncated"]),
    "ood-check-missing": ("robustness.ood", lambda c: ["check", c.ood(os.unlink)], ["distortion05.npy"]),
    "report-weights-of-another-model": ("robustness.report", lambda c: [
        "--ood", c.ood(), "--out", str(c.tmp / "rep"), "--model", "small_cnn",
        "--weights", _weights(c, {"conv.weight": torch.zeros(3)})], ["weights.pth", "small_cnn"]),
    "report-weights-not-torch": ("robustness.report", lambda c: [
        "--ood", c.ood(), "--out", str(c.tmp / "rep"), "--weights", _weights(c, os.urandom(100))], ["weights.pth"]),
    "report-weights-that-run-code": ("robustness.report", lambda c: [
        "--ood", c.ood(), "--out", str(c.tmp / "rep"), "--weights", _weights(c, {"w": Evil()})], ["weights.pth"]),
    "generate-npz-missing": ("robustness.generate", lambda c: ["--npz", str(c.tmp / "nope.npz"), "--out",
                                                               str(c.tmp / "gen")], ["nope.npz"]),
    "generate-npz-truncated": ("robustness.generate", lambda c: [
        "--npz", _bad_file("truncated", c.tmp, c.arrays)[0], "--out", str(c.tmp / "gen")], ["truncated.npz"]),
}


@pytest.mark.parametrize("name", ROBUSTNESS)
def test_robustness_cli(name, case, capsys):
    import importlib

    module, build, words = ROBUSTNESS[name]
    rc = _run(importlib.import_module(module).main, build(case))
    _one_clear_line(rc, capsys.readouterr().err, words)


# The same, as the real processes a person runs (exit status and stderr as the shell sees them). One of each
# kind: flags, YAML, data, weights; `resources` larger than the machine against a real local Ray.
PROCESSES = {
    "orchestrator-unknown-flag": (["orchestrator.py"], lambda c: c.args("--bogus"), "unrecognized arguments"),
    "orchestrator-corrupt-npz": (["orchestrator.py"], lambda c: c.args(data=_bad_file("corrupt_member", c.tmp,
                                                                                      c.arrays)[0]), "corrupt.npz"),
    "orchestrator-more-cpus-than-the-machine": (
        ["orchestrator.py"], lambda c: c.args("--cpus", "1", space=c.space("resources: {cpu: 1", "resources: {cpu: 3")),
        "resources.cpu 3 per trial, but the machine has 1 CPUs"),
    "trainables-weights-of-another-model": (["-m", "trainables"], lambda c: [
        *_resnet(c, _weights(c, {"conv.weight": torch.zeros(3)})), "--data", c.npz, "--out", str(c.tmp / "o")],
        "do not match"),
}


@pytest.mark.parametrize("name", PROCESSES)
def test_as_a_real_process(name, case):
    prog, build, words = PROCESSES[name]
    cmd = [sys.executable, *([os.path.join(ROOT, prog[0])] if prog[0].endswith(".py") else prog), *build(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    # Ray's own start-up warnings may come first; ours is the one `error:` line, and the last.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    _one_clear_line(proc.returncode, errors[0], [words])
    assert "Traceback" not in proc.stderr


def test_the_figures_in_reliability_md_are_these_tables():
    """RELIABILITY.md quotes how many bad inputs are tried: the numbers must be these tables' sizes."""
    import re

    text = open(os.path.join(ROOT, "RELIABILITY.md"), encoding="utf-8").read()
    found = re.search(r"\*\*(\d+)\*\* cases: (\d+) `orchestrator.py`, (\d+) `python -m trainables`, (\d+) `robustness` "
                      r"CLIs, (\d+) again as real processes", text)
    assert found, "RELIABILITY.md no longer has the line with the bad-input figures"
    tables = [ORCHESTRATOR, TRAINABLES, ROBUSTNESS, PROCESSES]
    assert [int(v) for v in found.groups()] == [sum(map(len, tables))] + [len(t) for t in tables]


# ---- every command line (trainables.cli.COMMANDS): a bad flag, missing arguments, the wrapper's mapping ----

from trainables import cli  # noqa: E402
from trainables.errors import UserError  # noqa: E402

# Each command line with arguments that parse (nothing needs to exist: parsing fails on the bad flag first).
PARSES = {
    "orchestrator.py": ["--space", "s.yaml"],
    "python -m trainables": ["--out", "o"],
    "python -m robustness.ood": ["check", "d"],
    "python -m robustness.generate": ["--npz", "x.npz", "--out", "o"],
    "python -m robustness.report": ["--ood", "d", "--out", "o"],
    "python -m sweep.report": ["results/x"],
}


def _main(prog):
    import importlib

    return importlib.import_module(cli.COMMANDS[prog]).main


def _modules_with_a_main_guard() -> set[str]:
    import ast

    from source_scan import sources

    found = set()
    for path in sources(("sweep", "trainables", "robustness"), recursive=True):
        tree = ast.parse(open(path, encoding="utf-8").read())
        if any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body):
            found.add(os.path.relpath(path, ROOT)[:-3].replace(os.sep, "."))
    return found


def test_every_command_line_is_in_the_registry_and_goes_through_the_wrapper():
    import ast
    import importlib

    from source_scan import dotted_name

    mains = _modules_with_a_main_guard() - {"orchestrator"}
    assert mains and mains <= set(cli.COMMANDS.values()), mains - set(cli.COMMANDS.values())
    assert sorted(PARSES) == sorted(cli.COMMANDS)
    for prog, module in cli.COMMANDS.items():
        tree = ast.parse(open(importlib.import_module(module).__file__, encoding="utf-8").read())
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        assert "cli.run" in {dotted_name(n.func) for n in ast.walk(main) if isinstance(n, ast.Call)}, prog
        assert "cli.parser" in {dotted_name(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}, prog


@pytest.mark.parametrize("prog", cli.COMMANDS)
def test_missing_arguments_are_one_line(prog, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = _run(_main(prog), [])
    _one_clear_line(rc, capsys.readouterr().err, ["the following arguments are required", "see --help"])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("prog", cli.COMMANDS)
def test_a_bad_flag_is_one_line(prog, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = _run(_main(prog), [*PARSES[prog], "--bogus", "x"])
    _one_clear_line(rc, capsys.readouterr().err, ["unrecognized arguments: --bogus x", "see --help"])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("prog", cli.COMMANDS)
def test_a_bad_flag_as_a_real_process(prog, tmp_path):
    """What the shell sees: `python -m robustness.ood --bogus x` printed argparse's usage block before."""
    how = prog.split()[1:] if prog.startswith("python ") else [os.path.join(ROOT, prog)]
    proc = subprocess.run([sys.executable, *how, *PARSES[prog], "--bogus"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT})
    _one_clear_line(proc.returncode, proc.stderr, ["unrecognized arguments: --bogus"])
    assert "usage:" not in proc.stderr and proc.stdout == ""


def _raise(exc):
    def body():
        raise exc
    return body


# what the command's body raises -> (exit status, the one line, or None: it must propagate as a bug)
WRAPPER = {
    "user-error": (_raise(UserError("--lr -1: must be > 0")), 2, "error: --lr -1: must be > 0"),
    "disk-full": (_raise(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/r/best.json")), 2,
                  "error: '/r/best.json': No space left on device; files written before are intact. Run it again"),
    "read-only": (_raise(OSError(errno.EROFS, os.strerror(errno.EROFS), "/r")), 2,
                  "error: '/r': Read-only file system; files written before are intact. Run it again"),
    "ctrl-c": (_raise(KeyboardInterrupt()), 130, "interrupted. Nothing was lost"),
    "done": (lambda: None, 0, None),
    "its-own-status": (lambda: 3, 3, None),
}


@pytest.mark.parametrize("name", WRAPPER)
def test_the_wrapper_maps_what_a_person_fixes_to_one_line(name, capsys):
    body, status, line = WRAPPER[name]
    rc = cli.run(body, after_write_error=lambda: "Run it again", after_interrupt="Nothing was lost")
    err = capsys.readouterr().err
    assert rc == status and err.strip().splitlines() == ([line] if line else []), err


@pytest.mark.parametrize("exc", [OSError(errno.ENOENT, "No such file or directory", "x"), RuntimeError("bug"),
                                 ValueError("bug")], ids=repr)
def test_a_bug_keeps_its_traceback(exc):
    with pytest.raises(type(exc)):
        cli.run(_raise(exc))


def test_write_space_helper_is_the_sweep_tests_space(tmp_path):
    assert open(write_space(tmp_path, name="bad", n=4)).read() == SPACE.format(name="bad", n=4)


# ---- any damage to the text of a YAML file (the structural mutations are tests/test_space_properties.py) ----

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

GOOD_YAML = SPACE.format(name="prop", n=4)
YAML_SYNTAX = list(":{}[]-#'\"\t\n &*!|>%@`,")
DAMAGE = st.lists(st.tuples(st.integers(0, len(GOOD_YAML)), st.integers(0, 3),
                            st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(YAML_SYNTAX), max_size=3)),
                  min_size=1, max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(damage=DAMAGE)
def test_any_damaged_yaml_text_loads_or_is_one_line_naming_the_file(tmp_path, damage):
    """Characters inserted, deleted or replaced anywhere: a spec, or a SpaceError of one line that names the
    file, and for a syntax error the line and column, inside the file."""
    from sweep.space import SpaceError, load_space

    text = GOOD_YAML
    for at, cut, insert in damage:
        text = text[:at] + insert + text[at + cut:]
    path = tmp_path / "damaged.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_space(str(path))
    except SpaceError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        if "YAML syntax error" in msg:
            line, col = (int(v) for v in msg[len(str(path)) + 1:].split(":")[:2])
            lines = path.read_text(encoding="utf-8").count("\n") + 1  # as read: \r and \r\n are newlines
            assert 1 <= line <= lines and col >= 1, msg
