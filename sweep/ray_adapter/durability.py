"""What makes a killed sweep lose nothing: the files each trial keeps in its folder of the sweep's storage, and how a
restarted trial finds where it really was.

Each saved epoch is a checkpoint folder with the training state (`state.pt`) and its lineage (`lineage.json`: an id,
the id of the state it continued from, the trial that wrote it, its epoch). Tune's own record of which checkpoint a
trial restarts from reaches the results folder later than the trial's files (every few checkpoints or seconds), and
under PBT a trial may restart from another trial's checkpoint: so a restarted trial follows the lineage from the
checkpoint Tune gave it to the newest state that continued it, and replays the epochs Tune missed from that state's
saved metrics instead of training them again. A trial whose end was made durable (FINISHED_MARK) trains nothing more.
"""
from __future__ import annotations

import io
import json
import os
import time
import uuid
from dataclasses import dataclass, field

from pyarrow.fs import FileSelector, FileSystem, FileType, LocalFileSystem

CKPT_FILE = "state.pt"
LINEAGE_FILE = "lineage.json"
DIVERGED_MARK = "diverged.txt"
ERROR_MARK = "error.json"  # the trial's exception, classified where it was raised: {"kind", "user", "message"}
FINISHED_MARK = "finished.txt"
PROGRESS_FILE = "progress.json"


def fs_of(path: str):
    """(filesystem, path) for a local path or a cloud URI."""
    return FileSystem.from_uri(path) if "://" in path else (LocalFileSystem(), path)


def write_file(fs, path: str, data: str | bytes) -> None:
    """Temp name, then rename: a kill mid-write never leaves half a file (which would not parse)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with fs.open_output_stream(tmp) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    fs.move(tmp, path)


def read_file(fs, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.read().decode()
    except (OSError, FileNotFoundError):
        return None


def exists(fs, path: str) -> bool:
    return fs.get_file_info(path).type != FileType.NotFound


def load_state(fs, folder: str) -> dict:
    """A checkpoint folder's training state (raises when it is missing or cut short)."""
    import torch

    with fs.open_input_file(os.path.join(folder, CKPT_FILE)) as f:
        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)


def read_checkpoint(path: str) -> dict:
    """A trial's saved training state, from local or shared storage (or a cloud URI)."""
    fs, folder = fs_of(path)
    return load_state(fs, folder)


def lineage(fs, folder: str) -> dict | None:
    text = read_file(fs, os.path.join(folder, LINEAGE_FILE))
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def new_lineage(parent: str | None, trial_id: str, epoch: int) -> dict:
    return {"id": uuid.uuid4().hex, "from": parent, "trial": trial_id, "epoch": epoch}


@dataclass
class Start:
    """Where a (re)started trial continues."""

    state: dict | None = None  # the training state to continue from (None: from scratch)
    replay: list = field(default_factory=list)  # epochs to report from `state`'s saved metrics, not train again
    finished: bool = False  # its end was durable: nothing to train
    parent: str | None = None  # lineage id of `state`: what its next checkpoint continues
    exploited_from: str | None = None  # the trial whose checkpoint this one was given (PBT's exploit)


def start(given_path: str | None, given_fs, fs, folder: str, trial_id: str) -> Start:
    """Where the trial continues, from the checkpoint Tune gave it (its own, another trial's under PBT, or none) and
    the checkpoints in its own folder."""
    infos = fs.get_file_info(FileSelector(folder, allow_not_found=True))
    own = sorted((i.path for i in infos if i.type == FileType.Directory and i.base_name.startswith("checkpoint_")),
                 reverse=True)  # newest first
    finished = None
    if any(i.base_name == FINISHED_MARK for i in infos):
        finished = int(read_file(fs, os.path.join(folder, FINISHED_MARK)) or 0)
    out = Start(finished=finished is not None)
    given = lineage(given_fs, given_path) if given_path else None
    try:
        out.state = load_state(given_fs, given_path) if given_path else None
    except Exception:  # noqa: BLE001 - deleted as a newer one arrived, just before the kill: take the newest below
        out.state, given, given_path = None, None, None
    if given and given.get("trial") != trial_id:
        out.exploited_from = given.get("trial")
    out.parent = given["id"] if given else None
    newest = _newest_descendant(fs, own, given, given_path, finished)
    if newest is not None:
        state, tag = newest
        done = out.state["epoch"] if out.state else 0
        out.replay = state["history"][done:state["epoch"]]
        if out.replay:
            out.state, out.parent = state, tag
    if out.state is not None and out.state.get("stand_in"):  # nothing newer could be read after all: start over
        out.state, out.parent, out.replay = None, None, []
    return out


def _newest_descendant(fs, own: list[str], given: dict | None, given_path: str | None, finished: int | None):
    """(state, lineage id) of the newest readable checkpoint in `own` that continued the given one, if any.
    Checkpoints written before lineage files existed are ordered by name, as Tune numbers them."""
    tags = {path: lineage(fs, path) for path in own}
    if given is not None or (given_path is None and any(tags.values())):
        parent, found = (given or {}).get("id"), None
        while True:
            children = [p for p in own if tags[p] and tags[p].get("from") == parent]
            nxt = next(((p, s) for p in children if (s := _readable(fs, p, finished)) is not None), None)
            if nxt is None:
                return found
            found, parent = (nxt[1], tags[nxt[0]]["id"]), tags[nxt[0]]["id"]
    name = os.path.basename(given_path.rstrip("/")) if given_path else None
    for path in own:  # the newest readable one above the given name
        if os.path.basename(path) == name:
            return None
        state = _readable(fs, path, finished)
        if state is not None:
            return state, None
    return None


def _readable(fs, path: str, finished: int | None) -> dict | None:
    try:
        state = load_state(fs, path)
    except Exception:  # noqa: BLE001 - whatever the failure, it is not a complete checkpoint
        return None
    if finished is not None and state["epoch"] > finished:
        return None
    return state


def mark_finished(fs, folder: str, epochs: int) -> None:
    fs.create_dir(folder, recursive=True)
    write_file(fs, os.path.join(folder, FINISHED_MARK), str(int(epochs)))


def is_finished(fs, folder: str) -> bool:
    return exists(fs, os.path.join(folder, FINISHED_MARK))


def stand_in_for_deleted_checkpoints(exp_path: str) -> None:
    """Tune deletes a trial's previous checkpoint the moment it registers a new one, and saves its experiment state
    (which names the checkpoint to restore from) a moment later: killed in between, the state names a deleted
    checkpoint, Ray refuses to restore the trial and it ends `errored`, finished or not (measured with
    bench/kill_resume.py). With num_to_keep=1 that can only be the one before the newest: put a stand-in there
    holding the epochs it had and the lineage id the newest continued, so the trial restores and `start` follows
    the lineage to the newest."""
    import torch

    fs, root = fs_of(exp_path)
    for trial in fs.get_file_info(FileSelector(root, allow_not_found=True)):
        if trial.type != FileType.Directory or not trial.base_name.startswith("trial_"):
            continue
        names = {i.base_name for i in fs.get_file_info(FileSelector(trial.path))
                 if i.type == FileType.Directory and i.base_name.startswith("checkpoint_")}
        if not names:
            continue
        newest = max(names)
        before = f"checkpoint_{int(newest.removeprefix('checkpoint_')) - 1:06d}"
        if before in names or before.endswith("-00001"):
            continue
        newest_path = os.path.join(trial.path, newest)
        try:
            state = load_state(fs, newest_path)
        except Exception:  # noqa: BLE001 - cut short by the kill: Ray restores from an earlier one, which exists
            continue
        buf = io.BytesIO()
        torch.save({"epoch": state["epoch"] - 1, "history": state["history"][:state["epoch"] - 1],
                    "stand_in": True}, buf)
        fs.create_dir(os.path.join(trial.path, before))
        tag = lineage(fs, newest_path)
        if tag:
            write_file(fs, os.path.join(trial.path, before, LINEAGE_FILE),
                       json.dumps({**tag, "id": tag["from"], "from": None, "epoch": state["epoch"] - 1}))
        write_file(fs, os.path.join(trial.path, before, CKPT_FILE), buf.getvalue())


def trial_folder(trial_id: str) -> str:
    """The name of a trial's folder in the experiment (Tune's trial_dirname_creator: sweep/ray_adapter/tuner.py)."""
    return f"trial_{trial_id}"


def drop_weights(checkpoints, keep: set[str]) -> None:
    """After the sweep: every trial's saved training state but `keep`'s goes (its metrics stay in the results files);
    `checkpoints`: (trial id, last checkpoint path or None). Under PBT a trial's last checkpoint can be the one it was
    given by an exploit at its last epoch, in the donor's folder: each trial's own folder is emptied, never the one its
    path is in (measured: the winner's weights went with a trial that had copied them), and a path a kept trial
    names stays wherever it is."""
    checkpoints = [(t, p.rstrip("/")) for t, p in checkpoints if p]
    named = {p for t, p in checkpoints if t in keep}
    for trial_id, path in checkpoints:
        if trial_id in keep:
            continue
        fs, own = fs_of(os.path.join(os.path.dirname(os.path.dirname(path)), trial_folder(trial_id)))
        for info in fs.get_file_info(FileSelector(own, allow_not_found=True)):
            if info.type == FileType.Directory and info.base_name.startswith("checkpoint_") \
                    and not any(p.endswith(info.path.rstrip("/")) for p in named):
                fs.delete_dir(info.path)


def drop_weights_keep_folders(fs, trial_dir: str) -> None:
    """A trial stopped early: each checkpoint's weights go, its folder, lineage and its epochs' metrics stay. Tune's
    last saved record of the trial (taken before Tune marks it terminated) names that checkpoint as the state to
    restore it from: deleted, a kill -9 before Tune's next save made --resume fail to restore it ("does not exist on
    storage anymore"), ending it errored (measured with bench/kill_resume.py). Kept weightless, it restores, `start`
    sees the finished mark and trains nothing, and the history is still there."""
    import torch

    for info in fs.get_file_info(FileSelector(trial_dir, allow_not_found=True)):
        if info.type != FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        try:
            state = load_state(fs, info.path)
        except Exception:  # noqa: BLE001 - cut short by an earlier kill: nothing in it worth keeping
            fs.delete_dir_contents(info.path)
            continue
        buf = io.BytesIO()
        torch.save({k: state[k] for k in ("epoch", "history", "stand_in") if k in state}, buf)
        write_file(fs, os.path.join(info.path, CKPT_FILE), buf.getvalue())


def prune(fs, folder: str, protect_every: int) -> None:
    """Under PBT Tune keeps every checkpoint (another trial may be told to copy one long after it was written); the
    trial keeps its two newest and the two newest at a multiple of `protect_every` (PBT's perturbation interval:
    where a donor's checkpoint is taken), and deletes the rest."""
    dated = []
    for info in fs.get_file_info(FileSelector(folder, allow_not_found=True)):
        if info.type == FileType.Directory and info.base_name.startswith("checkpoint_"):
            tag = lineage(fs, info.path)
            if tag:
                dated.append((int(tag["epoch"]), info.base_name, info.path))
    dated.sort(reverse=True)
    keep = {p for _, _, p in dated[:2]} | {p for _, _, p in [d for d in dated if d[0] % protect_every == 0][:2]}
    for _, _, path in dated:
        if path not in keep:
            fs.delete_dir(path)


def trained_anything(exp_path: str) -> bool:
    """Whether any trial of the experiment finished an epoch: a checkpoint, or a result Tune logged."""
    fs, root = fs_of(exp_path)
    for trial in fs.get_file_info(FileSelector(root, allow_not_found=True)):
        if trial.type != FileType.Directory or not trial.base_name.startswith("trial_"):
            continue
        for info in fs.get_file_info(FileSelector(trial.path)):
            if info.base_name.startswith("checkpoint_") or (info.base_name == "result.json" and info.size):
                return True
    return False


def set_aside(exp_path: str) -> str:
    """Move an experiment's state away (its trials' error files stay readable); returns where it went."""
    fs, root = fs_of(exp_path)
    dest = f"{root.rstrip('/')}.before-{time.strftime('%Y%m%d-%H%M%S')}"
    fs.move(root, dest)
    return dest
