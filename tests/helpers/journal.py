"""Shared by the journal's tests: an optuna.journal read back as Optuna reads it, and the real optuna-dashboard
serving one (127.0.0.1, a free port, stopped by the pid the test started)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import optuna


def load(path: str) -> optuna.Study:
    """The journal's one study."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def trial_ids(path: str) -> list[str]:
    """Each trial's sweep id, in the journal's order (a trial recorded twice is there twice)."""
    return [t.user_attrs["trial_id"] for t in load(path).trials]


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(journal: str, log_path, wait_s: float = 120):
    """optuna-dashboard serving `journal`, as a user starts it (the command pip installs beside this Python); yields
    its base URL once /api/studies answers."""
    port, log = _free_port(), open(log_path, "w")
    command = os.path.join(os.path.dirname(sys.executable), "optuna-dashboard")
    proc = subprocess.Popen([command, journal, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(os.fspath(log_path)))
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.time() + wait_s
        while True:
            assert proc.poll() is None, open(log_path).read()[-2000:]
            try:
                get(f"{base}/api/studies")
                break
            except OSError:
                assert time.time() < deadline, f"the dashboard did not answer within {wait_s:.0f} s"
                time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # the server this test started, by its pid
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()


def served_trials(base: str) -> list[dict]:
    """The trials the dashboard serves (of the journal's one study; none before the study exists)."""
    studies = get(f"{base}/api/studies")["study_summaries"]
    if not studies:
        return []
    (summary,) = studies
    return get(f"{base}/api/studies/{summary['study_id']}")["trials"]


def attr(trial: dict, key: str):
    """A user attribute of a trial as the dashboard serves it."""
    return next(a["value"] for a in trial["user_attrs"] if a["key"] == key)
