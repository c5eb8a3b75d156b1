"""The console stays the sweep's while the report is built: libraries' warnings go to logs/report.log.

A real one (Optuna's PED-ANOVA warns "Some regimes for parameter ... have less than 2 trials" when a conditional
parameter was used by one trial of those it measures: report_util's wide sweep, seed 3) and one of each kind
raised from inside the report step (a Python warning, an Optuna and a matplotlib log record).
"""
from __future__ import annotations

import logging
import os
import warnings

from report_util import build

from sweep import report
from sweep.report import pdf, quiet, views


def test_warnings_go_to_the_log_not_the_console(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(pdf, "BROWSERS", ("no-such-browser-here",))  # the one line the report may print
    real = views.importance

    def importance(*args, **kwargs):
        warnings.warn("a library's UserWarning", UserWarning, stacklevel=1)
        warnings.warn("a DeprecationWarning, ignored outside", DeprecationWarning, stacklevel=1)
        logging.getLogger("optuna").warning("an Optuna log record")
        logging.getLogger("matplotlib.font_manager").warning("a matplotlib log record")
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "importance", importance)
    folder = build(tmp_path / "w", name="w", n=16, epochs=4, metric="ood_val_acc", ood=True, wide=True, seed=3)
    filters, show = list(warnings.filters), warnings.showwarning
    handlers = {n: list(logging.getLogger(n).handlers) for n in quiet.LOGGERS}
    report.write_report(folder)
    out = capfd.readouterr()
    assert out.err == ""
    assert [line.split()[0] for line in out.out.splitlines()] == ["[sweep]"]  # only "No report.pdf: ..."
    with open(os.path.join(folder, quiet.LOG), encoding="utf-8") as f:
        log = f.read()
    for said in ("a library's UserWarning", "a DeprecationWarning", "an Optuna log record", "a matplotlib log record",
                 "Some regimes for parameter"):
        assert said in log and said not in out.out
    # Put back as it was: the sweep's own warnings and log records are the console's again.
    assert warnings.filters == filters and warnings.showwarning is show
    assert {n: logging.getLogger(n).handlers for n in quiet.LOGGERS} == handlers
