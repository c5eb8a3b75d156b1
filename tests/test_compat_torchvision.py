"""trainables/compat_torchvision.py: the one place private torchvision names are read, each checked at import."""
from __future__ import annotations

import ast
import importlib
import os
from types import SimpleNamespace

import pytest
import torchvision
from source_scan import ROOT, sources

from trainables import compat_torchvision as compat

COMPAT = os.path.join(ROOT, "trainables", "compat_torchvision.py")
# Private names of other libraries (one each, not torchvision's): numpy's pickle helpers, efficientnet-lite's head.
OTHER_LIBRARIES = {"_reconstruct", "_frombuffer", "_fc"}


def private_reads(path: str) -> set[str]:
    """Private names a file imports from torchvision, and private attributes it reads on anything but self."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torchvision"):
            found |= {f"{node.module}.{a.name}" for a in node.names if "._" in f".{node.module}.{a.name}"}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("torchvision") and "._" in a.name}
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and ast.unparse(node.value) != "self"):
            found.add(node.attr)
    return found


def test_no_other_trainables_file_reads_a_private_torchvision_name():
    for path in sources(("trainables",)):
        if path != COMPAT and path.startswith(os.path.join(ROOT, "trainables")):
            assert private_reads(path) <= OTHER_LIBRARIES, os.path.relpath(path, ROOT)


def test_the_import_check_covers_every_private_name_the_module_reads():
    checked = {n for names in (*compat.FUNCTIONS.values(), *compat.MEMBERS.values()) for n in names}
    assert private_reads(COMPAT) - {"_color", "_geometry"} == checked  # _color/_geometry: its own module handles


def test_each_exposed_function_is_torchvision_s_own():
    for module, names in compat.FUNCTIONS.items():
        real = importlib.import_module(module)
        for name in names:
            assert getattr(compat, name.lstrip("_")) is getattr(real, name)


def test_a_missing_name_is_one_clear_error_naming_it_and_both_versions():
    wanted = {"some.module": ("_there", "_gone")}
    with pytest.raises(ImportError) as err:
        compat.check({"some.module": SimpleNamespace(_there=1)}, wanted, installed="9.9.0")
    text = str(err.value)
    assert "some.module._gone" in text and "9.9.0" in text and compat.PINNED in text and "_there" not in text
    with pytest.raises(ImportError, match="some.module._there"):  # the module itself gone
        compat.check({"some.module": None}, wanted, installed="9.9.0")
    compat.check({"some.module": SimpleNamespace(_there=1, _gone=2)}, wanted, installed="9.9.0")


@pytest.fixture
def patched(monkeypatch):
    """monkeypatch, undone and the module re-imported with the real names once the test is over."""
    yield monkeypatch
    monkeypatch.undo()
    importlib.reload(compat)


@pytest.mark.parametrize("module,owner,name", [
    ("torchvision.transforms.v2.functional._color", "", "_rgb_to_hsv"),
    ("torchvision.transforms.v2._auto_augment", "_AutoAugmentBase", "_apply_image_or_video_transform"),
], ids=["function", "transform-member"])
def test_importing_against_a_torchvision_without_the_name_fails_at_import(patched, module, owner, name):
    where = importlib.import_module(module)
    patched.delattr(getattr(where, owner) if owner else where, name)
    with pytest.raises(ImportError) as err:
        importlib.reload(compat)
    assert name in str(err.value) and torchvision.__version__ in str(err.value) and compat.PINNED in str(err.value)
