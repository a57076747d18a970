"""The one base class of errors a user can fix (a bad flag, file, folder or image).

The command line prints such an error as one line naming the input and exits with
status 2 (``--debug`` shows the traceback); any other exception is a bug and keeps its
traceback. Library callers can catch :class:`UserError` for all of them.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; the message names the file, folder, flag or value."""


class DiskFullError(UserError, OSError):
    """A file could not be written because its device is full or over quota; the message names
    the file and says so (what was written before stays: every write is atomic)."""


__all__ = ["DiskFullError", "UserError"]
