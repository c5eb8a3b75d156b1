"""Helpers for the tests that read the project's own source (test_atomic, test_safety)."""
from __future__ import annotations

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources(packages: tuple[str, ...], recursive: bool = False) -> list[str]:
    """orchestrator.py and every .py file of the packages, sorted."""
    pattern = os.path.join("**", "*.py") if recursive else "*.py"
    return sorted([os.path.join(ROOT, "orchestrator.py")] + [
        p for pkg in packages for p in glob.glob(os.path.join(ROOT, pkg, pattern), recursive=recursive)])


def dotted_name(func: ast.expr, rooted: bool = False) -> str:
    """'torch.load' for torch.load(...); for a call on an expression, e.g. f().write_text(...), the attribute
    chain ('write_text'), or '' with rooted=True."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    elif rooted:
        return ""
    return ".".join(reversed(parts))
