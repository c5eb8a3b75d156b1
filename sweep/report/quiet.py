"""The console stays the sweep's while the report is built: what libraries say goes to logs/report.log.

Optuna's importance warns per parameter ("Some regimes for parameter ... have less than 2 trials"), its plots
are marked experimental, matplotlib warns and logs; printed, they bury the sweep's last lines. Python warnings
and the records of these libraries' loggers are written to the results folder's logs/report.log instead, for
the report step only (sweep/library_log.py): everything is put back as it was when it ends.
"""
from __future__ import annotations

import os

from ..library_log import to_log as _to_log

LOG = os.path.join("logs", "report.log")
LOGGERS = ("optuna", "matplotlib", "PIL", "sweep.report")  # sweep.report: Chromium's messages (pdf.py)


def to_log(folder: str):
    """Within the block, warnings and the LOGGERS' records go to <folder>/logs/report.log (appended)."""
    return _to_log(os.path.join(folder, LOG), LOGGERS)
