"""The console stays the sweep's: what libraries warn in the driver goes to a log file in the results folder.

Python warnings (Ray's deprecations, Optuna's experimental features and its importance's "Some regimes for
parameter ... have less than 2 trials", matplotlib's) and the records of the loggers named here are written to a
file instead of the terminal, from Ray's start to the end of the run, and put back as they were when it ends. Ray's
and Optuna's own loggers go to logs/ray.log already (sweep/ray_adapter/cluster.py); the report step sends its own to
logs/report.log the same way (sweep/report/quiet.py).
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

LOG = os.path.join("logs", "warnings.log")
LOGGERS = ("matplotlib", "PIL", "py.warnings")
WARNED = "sweep.warnings"  # the logger each warning is written through


@contextlib.contextmanager
def to_log(path: str, loggers: tuple = LOGGERS, delay: bool = False) -> Iterator[str]:
    """Within the block, Python warnings and the records of `loggers` are appended to `path` (`delay`: created at
    the first record)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", delay=delay)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved = {}
    for name in (*loggers, WARNED):
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate)
        logger.handlers, logger.propagate = [handler], False
    warned = logging.getLogger(WARNED)

    def show(message, category, filename, lineno, file=None, line=None):
        warned.warning("%s", warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    try:
        with warnings.catch_warnings():  # restores the filters and showwarning on the way out
            warnings.simplefilter("default")  # each warning once per place, whatever filters were set outside
            warnings.showwarning = show
            yield path
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()


def run_log(folder: str) -> contextlib.AbstractContextManager:
    """The whole run's: <folder>/logs/warnings.log, written once something is said."""
    return to_log(os.path.join(folder, LOG), delay=True)
