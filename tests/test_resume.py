"""--resume with nothing to resume is refused. (A sweep interrupted with Ctrl-C and with kill -9 and resumed,
with no finished trial lost or re-run, is tests/test_interrupts.py: one sweep for both.)"""
from __future__ import annotations

from sweep_util import orchestrate, write_space


def test_resume_with_nothing_to_resume_is_refused(tmp_path, synth_npz):
    space = write_space(tmp_path, name="nothing")
    proc = orchestrate("--space", space, "--data", synth_npz, "--results-dir", str(tmp_path / "r"), "--resume")
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr
