"""The console stays the sweep's while the report is built: what libraries say goes to logs/report.log.

Optuna's importance warns per parameter ("Some regimes for parameter ... have less than 2 trials"), its plots
are marked experimental, matplotlib warns and logs; printed, they bury the sweep's last lines. Python warnings
and the records of these libraries' loggers are written to the results folder's logs/report.log instead, for
the report step only: everything is put back as it was when it ends.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

LOG = os.path.join("logs", "report.log")
LOGGERS = ("optuna", "matplotlib", "PIL", "sweep.report")  # sweep.report: Chromium's messages (pdf.py)


@contextlib.contextmanager
def to_log(folder: str) -> Iterator[str]:
    """Within the block, warnings and the LOGGERS' records go to <folder>/logs/report.log (appended)."""
    path = os.path.join(folder, LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")  # appends: a log keeps every build's lines
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate)
        logger.handlers, logger.propagate = [handler], False
    warned = logging.getLogger("sweep.report")

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
