"""The loader's two errors: `SpaceError` for the user, `Invalid` inside the loader."""
from __future__ import annotations

from trainables.errors import UserError


class SpaceError(UserError):
    """A search-space file (or an override of it) is wrong; the message names file, key, value, fix."""


class Invalid(Exception):
    """Internal: raised with a key path; `load_space` catches it once and turns it into a SpaceError
    that names the file, so no checker needs to know which file it reads."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message
