"""User-facing errors: bad config values, bad data files, bad weights.

Anything raising one of these is the user's input, not a bug: front ends print the message
alone (no traceback) and exit with status 2.
"""
from __future__ import annotations

import errno
import os


class UserError(ValueError):
    """Bad input a person can fix; the message says what, where and what is allowed."""


class ConfigError(UserError):
    """A bad config value. `key` is the config key it is about (None: the config as a whole), so a caller
    (the search-space loader) can point at the line that set it without parsing the message."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key

    def __reduce__(self):  # Ray pickles trial errors across processes: keep the key
        return (ConfigError, (str(self), self.key))


class DataError(UserError):
    pass


class WeightsError(UserError):
    pass


class DivergedError(RuntimeError):
    """Training loss became NaN/inf; carries where it happened so the run can be reported."""

    def __init__(self, epoch: int, step: int, loss: float):
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}: training stopped (diverged)")
        self.epoch, self.step, self.loss = epoch, step, loss

    def __reduce__(self):  # Ray pickles trial errors across processes
        return (DivergedError, (self.epoch, self.step, self.loss))


def first_line(exc: BaseException) -> str:
    """`Type: first line` of an exception's message: some (torch's weights_only refusal) run to 20 lines."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def closest(key: object, options) -> str | None:
    """The option `key` was most likely meant to be (a prefix either way, or a close spelling), or None."""
    import difflib

    key, options = str(key), [str(o) for o in options]
    close = [o for o in options if len(o) > 1 and (key.startswith(o) or o.startswith(key))][:1]
    close = close or difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(key: object, options) -> str:
    """'; did you mean 'x'?' for the closest option, else the list of options."""
    close = closest(key, options)
    return f"; did you mean '{close}'?" if close else f"; valid: {', '.join(str(o) for o in options)}"


# A file could not be written (disk full, quota, read-only or unwritable folder): the user's machine, not a bug.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}


def write_error_message(exc: OSError) -> str | None:
    """One line for an OSError a person fixes (see WRITE_ERRNOS), else None (a bug: let it raise)."""
    if exc.errno not in WRITE_ERRNOS:
        return None
    where = f"'{exc.filename}': " if exc.filename else ""
    return f"{where}{exc.strerror or os.strerror(exc.errno)}; files written before are intact"
