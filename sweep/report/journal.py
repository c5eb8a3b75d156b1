"""optuna.journal in the results folder: the sweep as an Optuna study, for `optuna-dashboard <folder>/optuna.journal`.

A journal is append-only, so recording the same trials twice would list them twice: the whole study is
rebuilt from trials.csv into a temporary file that replaces the journal in one rename. Calling
`record_trials` again (a resume, a rebuilt report) gives the same journal.
"""
from __future__ import annotations

import os

from trainables import atomic

from . import folder as results_folder
from .study import faithful_study

JOURNAL = "optuna.journal"


def record_trials(folder: str) -> str:
    """Write <folder>/optuna.journal from the sweep's files; returns its path."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    sweep = results_folder.load(folder)
    path = os.path.join(folder, JOURNAL)
    with atomic.atomic_path(path) as tmp:
        # An open(O_EXCL) lock file: the default symlink lock needs a filesystem with symlinks.
        backend = JournalFileBackend(tmp, lock_obj=JournalFileOpenLock(tmp))
        faithful_study(sweep, storage=JournalStorage(backend))
    return path
