"""Atomic file writes: a kill mid-write leaves the previous complete file, never a truncated one.

Every output of the project goes through here: `atomic_path` (a temporary name to write to), `open_writer`
(a file object, for output streamed in blocks), `write_text`/`write_json`/`torch_save`, and `publish` (rename a
file already complete, e.g. a download verified under its `.part` name). A written file's mode follows the
user's umask like any other program's output (0644 under umask 022): the temporary is created with 0666 and
the umask applies, instead of mkstemp's 0600, which would survive the rename.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from typing import IO, Any, Iterator


def _create_temp(folder: str, base: str) -> str:
    """An empty, new file next to the target; mode 0666 less the umask (os.open applies it, as open() does)."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for '{base}' in '{folder}'")


def publish(src: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make the complete file `src` durable, then rename it over `path` in one step."""
    with open(src, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(src, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp path in the target's folder; on success fsync it and rename it over `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _create_temp(folder, os.path.basename(path))
    try:
        yield tmp
        publish(tmp, path)
    except OSError as exc:
        # f.write() names no file; the temp name means nothing to a user. (An OSError without an errno keeps its
        # message: setting a file name on it would print "[Errno None] None: 'path'".)
        if exc.errno is not None and exc.filename in (None, tmp):
            exc.filename = path
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def open_writer(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """`open(path, mode)` for output written in pieces (a 950,000-row CSV, np.save into a handle): the file
    appears under `path` only once the block ends without an error."""
    if not mode.startswith("w"):
        raise ValueError(f"open_writer writes a whole new file: mode 'w' or 'wb', got {mode!r}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def write_text(path, text: str) -> None:
    with open_writer(path, "w") as f:
        f.write(text)


def write_json(path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def torch_save(obj: Any, path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _jsonable(o: Any):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def git_commit(cwd: str | None = None) -> str:
    """The code commit behind an artifact ('+dirty' when the tree has changes), or 'unknown'."""
    cwd = cwd or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
