"""python -m sweep.report RESULTS_FOLDER: rebuild report.md, report.html and optuna.journal from the result files."""
from __future__ import annotations

import os
import sys

from . import write_report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m sweep.report RESULTS_FOLDER  (a sweep's folder: results/<name>)", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    folder = argv[0]
    for name in ("sweep.json", "trials.csv"):
        if not os.path.isfile(os.path.join(folder, name)):
            print(f"error: RESULTS_FOLDER {folder!r} has no {name}; give a sweep's results folder "
                  f"(results/<name>, holding sweep.json and trials.csv)", file=sys.stderr)
            return 2
    write_report(folder)
    print(os.path.join(folder, "report.md"))
    print(os.path.join(folder, "report.html"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
