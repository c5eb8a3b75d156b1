"""Every file the project writes appears whole or not at all: a kill mid-write leaves the previous file.

Three checks. A scan of the source: every place that opens a file for writing, saves an array, a tensor or a
figure writes to a temporary name (or is listed below with the reason it may not; appending to a log is allowed).
Each writer run with the rename failing (what a kill between writing and renaming does): the previous file is
intact. And each writer's files follow the umask (0644 under 022), as any program's output does.
(Disk full at each output of a whole sweep: tests/test_pipeline_faults.py.)
"""
from __future__ import annotations

import ast
import errno
import glob
import json
import os
import stat

import numpy as np
import pytest
import torch

from source_scan import ROOT, dotted_name as _name, sources
from trainables import atomic

SOURCES = sources(("sweep", "trainables", "robustness"), recursive=True)  # sweep/space/, sweep/report/ too

# (file, target expression) -> why it may write straight to its target
ALLOWED = {
    ("sweep/pipeline/inputs.py", "probe"): "a probe of whether the results folder is writable; deleted at once",
    ("sweep/ray_adapter/trial.py", "os.path.join(d, dur.CKPT_FILE)"):
        "a private TemporaryDirectory Ray copies as a checkpoint",
    ("sweep/ray_adapter/trial.py", "os.path.join(d, dur.LINEAGE_FILE)"): "the same checkpoint's lineage, beside it",
    ("robustness/download.py", "part"): "<name>.part, renamed only once its sha256 is verified",
    ("sweep/ray_adapter/durability.py", "buf"): "an in-memory buffer, then written through a temporary name",
}
TEMP_NAMES = ("tmp", "fd")  # atomic_path / mkstemp temporaries, renamed over the target once complete


def _write_targets(path):
    """(line, target source) of every call that writes a file by name."""
    src = open(path, encoding="utf-8").read()
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Call):
            continue
        name, args = _name(node.func), node.args
        if name.startswith("atomic."):
            continue  # trainables.atomic's own functions
        target = None
        if name in ("open", "os.fdopen", "io.open") and args:
            mode = args[1] if len(args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            modes = [n.value for n in ast.walk(mode) if isinstance(n, ast.Constant)] if mode is not None else []
            # "w", "x", "+" replace or change what is there (also `"ab" if resumed else "wb"`); "a" alone only adds
            # after it (logs): a kill can cut the last line, never what was written before.
            if any(c in str(m) for m in modes for c in "wx+"):
                target = args[0]
        elif name.endswith((".savefig", ".write_text", ".write_bytes", ".to_csv", ".open_output_stream")):
            target = args[0] if args and not name.endswith((".write_text", ".write_bytes")) else node.func.value
        elif name in ("torch.save", "np.save", "numpy.save", "np.savez", "np.savez_compressed") and len(args) > 1:
            target = args[1] if name == "torch.save" else args[0]
        if target is not None:
            yield node.lineno, ast.get_source_segment(src, target)


def _non_atomic(path) -> list[str]:
    rel = os.path.relpath(path, ROOT)
    bad = []
    for line, target in _write_targets(path):
        if target in TEMP_NAMES or target == "f" or (rel, target) in ALLOWED:
            continue  # `f`: np.save(f, ...) into a handle opened on a temporary name (checked as its own open)
        if rel == "trainables/atomic.py":
            continue
        bad.append(f"{rel}:{line}: writes straight to {target} (use trainables.atomic)")
    return bad


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_write_goes_through_a_temporary_name(path):
    assert _non_atomic(path) == []


def test_the_scan_finds_writes(tmp_path):
    src = tmp_path / "w.py"
    src.write_text("open(path, 'w')\nfig.savefig(path)\ntorch.save(x, path)\nnp.save(path, a)\nopen(tmp, 'wb')\n"
                   "open(path)\np.write_text('x')\nopen(part, 'ab' if resumed else 'wb')\n"
                   "with atomic.open_writer(path) as f:\n    np.save(f, a)\nopen(log, 'a')\nopen(path, 'r+b')\n")
    assert [int(line.split(": ")[0].rsplit(":", 1)[1]) for line in _non_atomic(str(src))] == [1, 2, 3, 4, 7, 8, 12]
    seen = {(os.path.relpath(p, ROOT), target) for p in SOURCES for _, target in _write_targets(p)}
    stale = set(ALLOWED) - seen
    assert not stale  # each exemption names a write the scan sees in the project; a stale one would hide a new one


# ---- each writer, with the rename failing --------------------------------------------------------------

def _result():
    from robustness.measure import accuracy_table
    from robustness.ood import DL4DS_ORDER

    preds = np.tile(np.arange(20) % 3, (len(DL4DS_ORDER), 1))
    return accuracy_table(preds, np.zeros(4, np.int64), DL4DS_ORDER, 0.5)


def _sweep_folder(d):
    from sweep_util import SPACE  # noqa: F401 - the sweep tests' format

    (d / "sweep.json").write_text(json.dumps({"spec": {"name": "x", "metric": "val_loss", "mode": "min"},
                                              "param_names": ["lr"], "command": "c", "commit": "abc",
                                              "data": {"path": "p", "fingerprint": "0" * 64}}))
    (d / "trials.csv").write_text("trial_id,status,epochs,lr,final_val_loss,best_val_loss,time_s,error\n"
                                  "a,completed,2,0.1,1.5,1.4,3,\n")
    (d / "history.csv").write_text("trial_id,epoch,val_loss\na,1,1.6\na,2,1.5\n")


def _run():
    from sweep.outcome import Status, SweepRun, TrialOutcome

    return SweepRun([TrialOutcome("a", Status.COMPLETED, {"lr": 0.1}, {"epoch": 1, "val_loss": 1.0},
                                  [{"epoch": 1, "val_loss": 1.0}], None, 1.0)])


def _writers():
    from robustness import generate, report as rreport, submission
    from robustness.ood import DL4DS_ORDER, OOD_FILES
    from sweep import report, results

    return {
        "write_text": ("a.txt", lambda p: atomic.write_text(p, "new")),
        "write_json": ("a.json", lambda p: atomic.write_json(p, {"new": 1})),
        "torch_save (checkpoints, final/*.pt)": ("a.pt", lambda p: atomic.torch_save({"w": torch.ones(3)}, p)),
        "trials.csv": ("trials.csv", lambda p: results.write_trials_csv(p, [{"trial_id": "b"}])),
        "history.csv": ("history.csv", lambda p: results.write_history_csv(p, _run())),
        "plots/curves.png": ("curves.png", lambda p: report.plot_curves([{"trial_id": "a", "epoch": 1, "x": 1}],
                                                                        [{"trial_id": "a", "status": "completed"}],
                                                                        "x", p)),
        "plots/params.png": ("params.png", lambda p: report.plot_params([{"lr": "0.1", "final_x": "1",
                                                                          "status": "completed"}], ["lr"], "x", p)),
        "report.md": ("report.md", lambda p: (_sweep_folder(p.parent), report.write_report(str(p.parent)))),
        "submission_ood.csv": ("submission_ood.csv", lambda p: submission.write_submission(
            np.zeros((len(OOD_FILES), 5), np.int64), str(p))),
        "robustness.generate distortionNN.npy": ("d.npy", lambda p: generate.save_atomic(str(p), np.zeros(3))),
        "robustness report.md + heatmap.png": ("report.md", lambda p: rreport.write_report(_result(), str(p.parent))),
        "robustness contact_sheet.png": ("contact_sheet.png", lambda p: rreport.contact_sheet_png(
            np.zeros((len(DL4DS_ORDER), 5, 32, 32, 3), np.uint8), str(p))),
        "open_writer (output streamed in blocks)": ("a.csv", _streamed),
        "publish (a download verified under .part)": ("distortion00.npy", _downloaded),
    }


def _streamed(path):
    with atomic.open_writer(path, "w") as f:
        for block in ("id,label\n", "a,1\n", "b,2\n"):
            f.write(block)


def _downloaded(path):
    part = f"{path}.part"
    with open(part, "wb") as f:  # as robustness.download fetches it
        np.save(f, np.zeros(3))
    atomic.publish(part, path)


WRITERS = ["write_text", "write_json", "torch_save (checkpoints, final/*.pt)", "trials.csv", "history.csv",
           "plots/curves.png", "plots/params.png", "report.md", "submission_ood.csv",
           "robustness.generate distortionNN.npy", "robustness report.md + heatmap.png", "robustness contact_sheet.png",
           "open_writer (output streamed in blocks)", "publish (a download verified under .part)"]


def test_the_writer_table_is_complete():
    assert sorted(_writers()) == sorted(WRITERS)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_kill_before_the_rename_leaves_the_previous_file(writer, tmp_path, monkeypatch):
    name, write = _writers()[writer]
    target = tmp_path / name
    target.write_bytes(b"the previous, complete file")
    write(target)  # it works at all (and makes every file the writer touches exist)
    before = {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "*")) if os.path.isfile(p)}
    before[str(target)] = b"the previous, complete file"
    target.write_bytes(before[str(target)])

    def killed(src, dst):
        raise KeyboardInterrupt("killed between writing and renaming")

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        write(target)
    monkeypatch.undo()
    after = {p: open(p, "rb").read() for p in before}
    assert after == before  # nothing under a final name changed: the previous files are whole


@pytest.mark.parametrize("umask", [0o022, 0o027])
@pytest.mark.parametrize("writer", WRITERS)
def test_written_files_follow_the_umask(writer, umask, tmp_path):
    """Like any program's output (0644 under umask 022), not the 0600 of a mkstemp temporary renamed into place:
    other people (a TA, a teammate) read report.md, the CSVs and the plots."""
    name, write = _writers()[writer]
    old = os.umask(umask)
    try:
        write(tmp_path / name)
    finally:
        os.umask(old)
    modes = {os.path.relpath(os.path.join(d, n), tmp_path): oct(stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode))
             for d, _, names in os.walk(tmp_path) for n in names}
    assert name in modes and set(modes.values()) == {oct(0o666 & ~umask)}, modes


def test_a_failed_write_leaves_no_temporary_and_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "best.json"
    target.write_text("{}")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the disk reports it: no file name

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic.write_json(target, {"a": 1})
    assert err.value.filename == str(target)  # the message will name best.json, not a temp name
    assert os.listdir(tmp_path) == ["best.json"] and target.read_text() == "{}"
