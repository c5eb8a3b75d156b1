"""python -m sweep.report RESULTS_FOLDER: rebuild report.md, report.html, report.pdf and optuna.journal from the
result files."""
from __future__ import annotations

import os
import sys

from trainables import cli
from trainables.errors import UserError

from . import write_report


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("python -m sweep.report", "Rebuild report.md, report.html, report.pdf (with a headless Chromium) "
                                             "and optuna.journal of a finished or interrupted sweep from its result "
                                             "files.")
    p.add_argument("folder", metavar="RESULTS_FOLDER", help="a sweep's folder: results/<name>")
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args.folder))


def _run(folder: str) -> int:
    for name in ("sweep.json", "trials.csv"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise UserError(f"RESULTS_FOLDER {folder!r} has no {name}; give a sweep's results folder "
                            f"(results/<name>, holding sweep.json and trials.csv)")
    write_report(folder)
    for name in ("report.md", "report.html", "report.pdf"):  # no report.pdf: write_report said why
        if os.path.isfile(os.path.join(folder, name)):
            print(os.path.join(folder, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
