"""One front end for every command line of the project (COMMANDS): what a person can fix is one line
`error: ...` and exit status 2, never argparse's usage block or a traceback; Ctrl-C is exit status 130.

    def main(argv=None) -> int:
        args = parser("python -m robustness.ood", "Check the OOD files.").parse_args(argv)  # + add_argument
        return cli.run(lambda: _run(args))

Lives in trainables/ (imports only trainables.errors) so that every package may use it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import UserError, write_error_message

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130

# Every command line: how a person types it -> the module whose main(argv) -> int runs it. tests/test_bad_input.py
# runs each with a bad flag and with its required arguments missing; a new command line belongs here.
COMMANDS = {
    "orchestrator.py": "sweep.cli",
    "python -m trainables": "trainables.__main__",
    "python -m robustness.ood": "robustness.ood",
    "python -m robustness.generate": "robustness.generate",
    "python -m robustness.report": "robustness.report",
    "python -m sweep.report": "sweep.report.__main__",
}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit is 2 too, but after a usage block; keep it one line
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def parser(prog: str, description: str, **kwargs) -> Parser:
    return Parser(prog=prog, description=description, **kwargs)


def fail(message: str) -> int:
    """Print `error: message` (one line) and return the bad-input exit status."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(body: Callable[[], int | None], after_write_error: Callable[[], str] | str = "",
        after_interrupt: Callable[[], str] | str = "") -> int:
    """body() -> its exit status (None is 0), with what a person fixes mapped to one line and a status:
    UserError -> 2; an OSError of the machine (disk full, unwritable folder: see write_error_message) -> 2, then
    `after_write_error` (what to run once it is fixed); Ctrl-C -> 130, then `after_interrupt`. Any other error is a
    bug and keeps its traceback. The hints may be functions: they are asked only when needed."""
    try:
        status = body()
        return EXIT_OK if status is None else status
    except UserError as exc:
        return fail(str(exc))
    except OSError as exc:
        message = write_error_message(exc)
        if message is None:
            raise
        hint = _text(after_write_error)
        return fail(f"{message}. {hint}" if hint else message)
    except KeyboardInterrupt:
        hint = _text(after_interrupt)
        print(f"\ninterrupted. {hint}" if hint else "\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _text(hint: Callable[[], str] | str) -> str:
    return hint() if callable(hint) else hint
