"""A restarted trial finds where it really was (sweep/ray_adapter/durability.py), on checkpoint folders as a kill leaves
them: Tune's count of a trial's checkpoints lags its files, so the next checkpoint Tune copies can land on one saved
before the kill (or, under PBT, on one another trial is being cloned from). The worker's count moves past every folder
that exists first, so nothing saved is copied over and a kill in the middle of a copy loses nothing."""
from __future__ import annotations

import json

import pytest
import torch
from pyarrow.fs import LocalFileSystem

from sweep.ray_adapter import compat
from sweep.ray_adapter import durability as dur

FS = LocalFileSystem()


def _save(folder, name: str, epoch: int, tag: dict, *, cut_short: bool = False) -> str:
    path = folder / name
    path.mkdir()
    (path / dur.LINEAGE_FILE).write_text(json.dumps(tag))
    torch.save({"epoch": epoch, "history": [{"epoch": e, "val_loss": 5.0 - e} for e in range(1, epoch + 1)]},
               path / dur.CKPT_FILE)
    if cut_short:  # killed while Tune copied it
        data = (path / dur.CKPT_FILE).read_bytes()
        (path / dur.CKPT_FILE).write_bytes(data[:len(data) // 3])
    return str(path)


@pytest.fixture
def before_the_kill(tmp_path):
    """Epochs 1 and 2 saved; Tune's saved state knows only epoch 1's checkpoint (its next index is 1)."""
    first = dur.new_lineage(None, "t", 1)
    second = dur.new_lineage(first["id"], "t", 2)
    given = _save(tmp_path, "checkpoint_000000", 1, first)
    _save(tmp_path, "checkpoint_000001", 2, second)
    return tmp_path, given, second


def test_a_checkpoint_tune_does_not_know_is_replayed_not_trained_again(before_the_kill):
    folder, given, second = before_the_kill
    start = dur.start(given, FS, FS, str(folder), "t")
    assert start.state["epoch"] == 2 and [h["epoch"] for h in start.replay] == [2] and start.parent == second["id"]


class _Storage:
    """What the worker's storage holds of it: Tune's count of the trial's checkpoints and the folder it names. On a
    report with a checkpoint Tune counts one up, then copies to the folder named."""

    def __init__(self, folder, index: int):
        self.storage_filesystem, self.folder, self.current_checkpoint_index = FS, folder, index

    @property
    def checkpoint_fs_path(self) -> str:
        return str(self.folder / f"checkpoint_{self.current_checkpoint_index:06d}")


@pytest.fixture
def tune_storage(monkeypatch):
    from ray import tune

    holder = {}
    monkeypatch.setattr(tune, "get_context", lambda: type("Ctx", (), {"get_storage": lambda self: holder["s"]})())

    def make(folder, index):
        holder["s"] = _Storage(folder, index)
        return holder["s"]
    return make


@pytest.mark.parametrize("skipped", [True, False])
def test_a_kill_while_tune_copies_the_next_one(before_the_kill, tune_storage, skipped):
    """The replayed epoch 2 is reported with a checkpoint: Tune's restored count names checkpoint_000001: it exists."""
    folder, given, second = before_the_kill
    storage = tune_storage(folder, 0)
    if skipped:
        compat.skip_taken_checkpoint_names(dur.exists)
    else:  # what happened before: copied over it, file by file
        for f in (folder / "checkpoint_000001").iterdir():
            f.unlink()
        (folder / "checkpoint_000001").rmdir()
    name = f"checkpoint_{storage.current_checkpoint_index + 1:06d}"
    _save(folder, name, 2, dur.new_lineage(second["id"], "t", 2), cut_short=True)
    start = dur.start(given, FS, FS, str(folder), "t")
    if skipped:
        assert name == "checkpoint_000002"
        assert start.state["epoch"] == 2 and [h["epoch"] for h in start.replay] == [2]
    else:  # epoch 2 trained again
        assert start.state["epoch"] == 1 and start.replay == []


def test_a_folder_being_cloned_is_never_touched(before_the_kill, tune_storage):
    """PBT hands another trial this trial's checkpoint_000001 while this one, resumed with a lagging count, reports."""
    folder, _, second = before_the_kill
    cloned = (folder / "checkpoint_000001" / dur.CKPT_FILE).read_bytes()
    storage = tune_storage(folder, -1)
    compat.skip_taken_checkpoint_names(dur.exists)
    assert storage.current_checkpoint_index + 1 == 2
    assert (folder / "checkpoint_000001" / dur.CKPT_FILE).read_bytes() == cloned


def test_nothing_taken_keeps_tunes_count(tmp_path, tune_storage):
    storage = tune_storage(tmp_path, 3)
    compat.skip_taken_checkpoint_names(dur.exists)
    assert storage.current_checkpoint_index == 3 and list(tmp_path.iterdir()) == []


def _trial(root, trial_id: str, *names: str) -> None:
    for name in names:
        _save(root / f"trial_{trial_id}", name, 1, dur.new_lineage(None, trial_id, 1))


def test_dropping_weights_empties_each_trials_own_folder_only(tmp_path):
    """PBT: trial b copied the winner a's checkpoint at its last epoch (its last checkpoint is in a's folder); the
    winner w's last is its donor d's."""
    for t in "abdw":
        (tmp_path / f"trial_{t}").mkdir()
    _trial(tmp_path, "a", "checkpoint_000001", "checkpoint_000002")
    _trial(tmp_path, "b", "checkpoint_000001")
    _trial(tmp_path, "d", "checkpoint_000001", "checkpoint_000002")
    _trial(tmp_path, "w", "checkpoint_000001")
    last = {"a": "trial_a/checkpoint_000002", "b": "trial_a/checkpoint_000002", "d": "trial_d/checkpoint_000002",
            "w": "trial_d/checkpoint_000001"}
    dur.drop_weights([(t, str(tmp_path / p)) for t, p in last.items()], keep={"a", "w"})
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("trial_*/checkpoint_*"))
    assert left == ["trial_a/checkpoint_000001", "trial_a/checkpoint_000002", "trial_d/checkpoint_000001",
                    "trial_w/checkpoint_000001"]
