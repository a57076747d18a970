"""DALI's native log lines as the project's messages, for the command line.

DALI and its image codec library print problems straight to file descriptor 2 from C++ threads,
coloured and in their own format (``\\x1b[0;31m[ERROR] \\x1b[0m[png_parser] Could not retrieve image
info …``), whatever Python's logging says; the Python error that follows is already turned into
one ``fastpolicy: error:`` line. :func:`captured` routes fd 2 through a pipe to a small filter
process (:mod:`fastpolicy.stderr_filter`) while a command runs: a native error or warning line
becomes ``fastpolicy: the decoder said: png_parser: Could not retrieve image info …`` (other
native levels are dropped); every other byte reaches the real stderr as it arrives (progress
bars' ``\\r`` updates included). Being another process, the filter keeps draining if this one
aborts, crashes or is killed (a fatal error's last lines are not lost), needs nothing of this
process (no GIL, no thread to join), and ends once every writer — this process and any child that
inherited fd 2 — has closed the pipe.

Used by the CLI only: a library user's process keeps its stderr as it is.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stderr_filter.py")
"""The filter process's script (standard library only)."""

_STATE: dict = {"saved": None}


def real_stderr_fd() -> int:
    """The file descriptor of the real stderr: the saved one while :func:`captured` is active (a
    message written just before ``os._exit`` may go there directly), else 2."""
    return _STATE["saved"] if _STATE["saved"] is not None else 2


@contextlib.contextmanager
def captured():
    """Route fd 2 through the filter process for the block (nested: the outer one stays). Where
    the pipe or the process cannot be made, stderr stays as it was."""
    if _STATE["saved"] is not None:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        read_end, write_end = os.pipe()
        try:
            child = subprocess.Popen(
                [sys.executable, "-I", "-S", FILTER], stdin=read_end, stdout=saved, stderr=saved, close_fds=True
            )
        finally:
            os.close(read_end)
    except OSError:
        os.close(saved)
        yield
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    _STATE["saved"] = saved
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        _STATE["saved"] = None
        os.dup2(saved, 2)  # this process's write end closes: the filter drains and ends
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)  # (a child that inherited fd 2 keeps it open: it ends after that child)
        os.close(saved)
