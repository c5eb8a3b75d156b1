"""Where each framework may be imported (DESIGN.md): Ray and pyarrow in the sweep/ray_adapter/ package alone, wandb in
sweep/tracking.py alone, and nothing of Ray, Optuna, wandb or YAML in trainables/ (plain PyTorch). Imports go one
way: trainables imports neither robustness nor sweep; robustness does not import sweep."""
from __future__ import annotations

import ast
import os

import pytest
from source_scan import ROOT, sources

FILES = sources(("trainables", "robustness", "sweep", "bench", "cluster"), recursive=True)

# module root -> the only places that may import it (relative to the project root): a file, or a package ending in /
ONLY_IN = {
    "ray": ("sweep/ray_adapter/",),
    "pyarrow": ("sweep/ray_adapter/",),
    "wandb": ("sweep/tracking.py",),
}
FORBIDDEN_UNDER = {
    "trainables/": {"ray", "pyarrow", "optuna", "wandb", "yaml", "robustness", "sweep"},
    "robustness/": {"ray", "pyarrow", "optuna", "wandb", "yaml", "sweep"},
}


def imported_roots(path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_each_framework_is_imported_in_its_one_place(path):
    rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
    roots = imported_roots(path)
    for root, allowed in ONLY_IN.items():
        if root in roots:
            assert rel.startswith(allowed), f"{rel} imports {root}; only {', '.join(allowed)} may"
    for prefix, banned in FORBIDDEN_UNDER.items():
        if rel.startswith(prefix):
            assert not roots & banned, f"{rel} imports {sorted(roots & banned)}"


def test_the_scan_sees_what_it_must():
    rels = {os.path.relpath(p, ROOT).replace(os.sep, "/") for p in FILES}
    assert {"sweep/ray_adapter/tuner.py", "sweep/tracking.py", "sweep/pipeline/search.py",
            "trainables/engine.py"} <= rels
    assert "ray" in imported_roots(os.path.join(ROOT, "sweep", "ray_adapter", "tuner.py"))
    assert "pyarrow" in imported_roots(os.path.join(ROOT, "sweep", "ray_adapter", "durability.py"))
    assert "wandb" in imported_roots(os.path.join(ROOT, "sweep", "tracking.py"))  # imported lazily, still seen


def test_no_file_of_the_sweep_is_over_300_lines():
    """Short files with one job each (the sweep layer was split by job: issue 23)."""
    long = {os.path.relpath(p, ROOT): n for p in sources(("sweep",), recursive=True)
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > 300}
    assert long == {}


def test_the_checker_catches_a_stray_import(tmp_path):
    stray = tmp_path / "x.py"
    stray.write_text("import os\nfrom ray import tune\nimport pyarrow.fs as pf\n")
    assert imported_roots(str(stray)) == {"os", "ray", "pyarrow"}
