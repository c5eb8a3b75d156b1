"""Nothing a user hands us (YAML, checkpoints, weights, data files) can run code: checked in the source itself.

Every call in the project's code is inspected (ast, not grep: `model.eval()` is not `eval(`):
torch.load only with weights_only=True, YAML only through a SafeLoader, no eval/exec, pickle only
through an Unpickler subclass that restricts find_class, np.load never with allow_pickle=True.
"""
from __future__ import annotations

import ast
import importlib
import os

import pytest
import yaml
from source_scan import ROOT, dotted_name, sources

SOURCES = sources(("sweep", "trainables", "robustness", "bench"), recursive=True)


def _calls(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield tree, node


def _name(func) -> str:
    """'torch.load' for torch.load(...), 'eval' for eval(...), '' for calls on expressions."""
    return dotted_name(func, rooted=True)


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _module(path) -> str:
    return os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")


def _violations(path) -> list[str]:
    bad = []
    for _, call in _calls(path):
        name, where = _name(call.func), f"{os.path.relpath(path, ROOT)}:{call.lineno}"
        if name == "torch.load" and not _is_true(_kw(call, "weights_only")):
            bad.append(f"{where}: torch.load without weights_only=True")
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
                      "yaml.full_load_all"):
            bad.append(f"{where}: {name}")
        elif name == "yaml.load":
            loader = _kw(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
            cls = None
            if isinstance(loader, ast.Attribute) and _name(loader).startswith("yaml."):
                cls = getattr(yaml, loader.attr, None)
            elif isinstance(loader, ast.Name):
                cls = getattr(importlib.import_module(_module(path)), loader.id, None)
            if not (isinstance(cls, type) and issubclass(cls, yaml.SafeLoader)):
                bad.append(f"{where}: yaml.load without a SafeLoader")
        elif name in ("eval", "exec", "compile", "__import__"):
            bad.append(f"{where}: {name}()")
        elif name.split(".")[-1] in ("load", "loads") and name.split(".")[0] in ("pickle", "cloudpickle", "dill",
                                                                                "joblib", "marshal", "shelve"):
            bad.append(f"{where}: {name} (use a restricted Unpickler)")
        elif name in ("np.load", "numpy.load") and _is_true(_kw(call, "allow_pickle")):
            bad.append(f"{where}: np.load(allow_pickle=True)")
        elif _is_true(_kw(call, "shell")):
            bad.append(f"{where}: shell=True")
    return bad


def test_the_scan_covers_every_python_file_of_the_project():
    """Every .py file outside tests/ (a new package or folder included) is scanned."""
    found = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in ("tests", "results") and not d.startswith(".")]  # .venv, .git
        found += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    assert os.path.join(ROOT, "sweep", "ray_adapter", "durability.py") in found
    assert sorted(set(found) - set(SOURCES)) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_unsafe_loading_or_eval(path):
    assert _violations(path) == []


def test_every_unpickler_restricts_what_it_builds():
    """A pickle.Unpickler subclass is the one allowed way to read pickles: it must override find_class."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.ClassDef) and any(_name(b).endswith("Unpickler") for b in node.bases):
                found.append(node.name)
                assert any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body), node.name
    assert found  # the CIFAR-100 python pickles are read through one


def test_the_checker_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch, yaml, pickle, numpy as np\n"
                   "torch.load('x')\ntorch.load('x', weights_only=False)\nyaml.load(s, Loader=yaml.Loader)\n"
                   "yaml.unsafe_load(s)\neval('1')\npickle.loads(b'')\nnp.load('x', allow_pickle=True)\n"
                   "model.eval()\ntorch.load('x', weights_only=True)\nyaml.load(s, Loader=yaml.SafeLoader)\n")
    found = _violations(str(bad))
    assert [int(f.split(": ")[0].rsplit(":", 1)[1]) for f in found] == [2, 3, 4, 5, 6, 7, 8], found  # not 9-11


def test_a_malicious_checkpoint_is_refused(tmp_path):
    """(The CIFAR pickle case is tests/test_data.py::test_cifar_pickle_cannot_run_code.)"""
    import torch

    from trainables import checkpoint
    from trainables.errors import WeightsError

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 1, "model": Evil(), "optimizer": {}, "config": {}}, path)
    with pytest.raises(WeightsError, match="could not be read"):
        checkpoint.load(str(path))
    assert not (tmp_path / "pwned").exists()
