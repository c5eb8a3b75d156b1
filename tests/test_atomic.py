"""Every file the project writes appears whole or not at all: a kill mid-write leaves the previous file.

Two checks. A scan of the source: every place that opens a file for writing, saves an array, a tensor or a
figure writes to a temporary name (or is listed below with the reason it may not). And each writer run
with the rename failing (what a kill between writing and renaming does): the previous file is intact.
(Disk full at each output of a whole sweep: tests/test_pipeline_faults.py.)
"""
from __future__ import annotations

import ast
import errno
import glob
import json
import os

import numpy as np
import pytest
import torch

from source_scan import ROOT, dotted_name as _name, sources
from trainables import atomic

SOURCES = sources(("sweep", "trainables", "robustness"))

# (file, target expression) -> why it may write straight to its target
ALLOWED = {
    ("sweep/pipeline.py", "probe"): "a probe of whether the results folder is writable; deleted at once",
    ("sweep/ray_adapter.py", "os.path.join(d, CKPT_FILE)"): "a private TemporaryDirectory Ray copies as a checkpoint",
    ("robustness/download.py", "part"): "<name>.part, renamed only once its sha256 is verified",
    ("sweep/ray_adapter.py", "buf"): "an in-memory buffer, then written through a temporary name",
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
            if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
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
                   "open(path)\np.write_text('x')\n")
    assert len(_non_atomic(str(src))) == 5
    assert sum(len(list(_write_targets(p))) for p in SOURCES) > 10  # the project's writes are seen


# ---- each writer, with the rename failing --------------------------------------------------------------

def _result():
    from robustness.measure import accuracy_table
    from robustness.ood import CORRUPTIONS

    preds = np.tile(np.arange(20) % 3, (len(CORRUPTIONS), 1))
    return accuracy_table(preds, np.zeros(4, np.int64), CORRUPTIONS, 0.5)


def _sweep_folder(d):
    from sweep_util import SPACE  # noqa: F401 - the sweep tests' format

    (d / "sweep.json").write_text(json.dumps({"spec": {"name": "x", "metric": "val_loss", "mode": "min"},
                                              "param_names": ["lr"], "command": "c", "commit": "abc",
                                              "data": {"path": "p", "fingerprint": "0" * 64}}))
    (d / "trials.csv").write_text("trial_id,status,epochs,lr,final_val_loss,best_val_loss,time_s,error\n"
                                  "a,completed,2,0.1,1.5,1.4,3,\n")
    (d / "history.csv").write_text("trial_id,epoch,val_loss\na,1,1.6\na,2,1.5\n")


class _Run:
    trials = [{"trial_id": "a", "status": "completed", "error": "", "epochs": 1, "config": {"lr": 0.1},
               "metrics": {"val_loss": 1.0}}]
    histories = {"a": [{"epoch": 1, "val_loss": 1.0}]}


def _writers():
    from robustness import generate, report as rreport, submission
    from robustness.ood import CORRUPTIONS, OOD_FILES
    from sweep import report, results

    return {
        "write_text": ("a.txt", lambda p: atomic.write_text(p, "new")),
        "write_json": ("a.json", lambda p: atomic.write_json(p, {"new": 1})),
        "torch_save (checkpoints, final/*.pt)": ("a.pt", lambda p: atomic.torch_save({"w": torch.ones(3)}, p)),
        "trials.csv": ("trials.csv", lambda p: results.write_trials_csv(p, [{"trial_id": "b"}])),
        "history.csv": ("history.csv", lambda p: results.write_history_csv(p, _Run, ["epoch", "val_loss"])),
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
            np.zeros((len(CORRUPTIONS), 5, 32, 32, 3), np.uint8), str(p))),
    }


WRITERS = ["write_text", "write_json", "torch_save (checkpoints, final/*.pt)", "trials.csv", "history.csv",
           "plots/curves.png", "plots/params.png", "report.md", "submission_ood.csv",
           "robustness.generate distortionNN.npy", "robustness report.md + heatmap.png", "robustness contact_sheet.png"]


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
