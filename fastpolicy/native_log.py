"""DALI's native log lines as the project's messages, for the command line.

DALI and its image codec library print problems straight to file descriptor 2 from C++ threads,
coloured and in their own format (``\\x1b[0;31m[ERROR] \\x1b[0m[png_parser] Could not retrieve image
info …``), whatever Python's logging says; the Python error that follows is already turned into
one ``fastpolicy: error:`` line. :func:`captured` routes fd 2 through a pipe while a command runs:
a line in that native format becomes one log record (``fastpolicy: the decoder said: png_parser:
Could not retrieve image info …``, at warning level for errors and warnings, debug otherwise); every
other byte goes to the real stderr as it arrives (progress bars' ``\\r`` updates included, so
nothing waits for a newline). On leaving, fd 2 is restored and the pipe drained before returning.

Used by the CLI only: a library user's process keeps its stderr as it is.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading

from .log import get as get_logger

log = get_logger(__name__)

_NATIVE = re.compile(rb"^(?:\x1b\[[0-9;]*m)?\[(ERROR|WARNING|INFO|DEBUG|TRACE)\] ?(?:\x1b\[[0-9;]*m)?(.*?)\r?$")
"""One native log line: an optional colour code, ``[LEVEL]``, an optional reset code, the text."""
_MARKERS = tuple(
    colour + f"[{level}]".encode()
    for level in ("ERROR", "WARNING", "INFO", "DEBUG", "TRACE")
    for colour in (b"", b"\x1b[0;31m", b"\x1b[0;33m", b"\x1b[0;32m", b"\x1b[0;36m", b"\x1b[0;37m", b"\x1b[0;35m")
)
"""How a native line starts; bytes at a line's start that could still become one are held back."""

_HOLD_SECONDS = 0.2
"""How long bytes that could start a native line wait for the rest of it before being forwarded."""

_STATE: dict = {"saved": None}


def real_stderr_fd() -> int:
    """The file descriptor of the real stderr: the saved one while :func:`captured` is active (a
    message written just before ``os._exit`` must go there, not into the pipe), else 2."""
    return _STATE["saved"] if _STATE["saved"] is not None else 2


def _native_text(line: bytes) -> tuple[str, str] | None:
    """``(level, text)`` of a native log line (without its newline), None for any other line."""
    match = _NATIVE.match(line)
    if match is None:
        return None
    text = match.group(2).decode("utf-8", "replace").strip()
    text = re.sub(r"^\[([^\]]+)\]\s*", r"\1: ", text)  # "[png_parser] msg" -> "png_parser: msg"
    return match.group(1).decode(), text


def _could_be_marker(head: bytes) -> bool:
    return any(marker.startswith(head) or head.startswith(marker) for marker in _MARKERS)


class _Filter:
    """Splits the pipe's bytes into native lines (to the log) and everything else (forwarded)."""

    def __init__(self, out_fd: int) -> None:
        self.out_fd = out_fd
        self.pending = b""
        self.at_line_start = True

    def _write(self, data: bytes) -> None:
        while data:
            written = os.write(self.out_fd, data)
            data = data[written:]

    def flush(self) -> None:
        """Forward what is held back as it is (nothing more came for a while: not a native line)."""
        if self.pending:
            self._write(self.pending)
            self.at_line_start = self.pending.endswith((b"\n", b"\r"))
            self.pending = b""

    def feed(self, data: bytes, final: bool = False) -> None:
        self.pending += data
        while self.pending:
            if self.at_line_start and _could_be_marker(self.pending[:32]):
                newline = self.pending.find(b"\n")
                if newline < 0:
                    if final or len(self.pending) > 65536:
                        self.flush()  # the end, or no line ever came
                    return  # wait for the rest of the line
                line, self.pending = self.pending[:newline], self.pending[newline + 1 :]
                found = _native_text(line)
                if found is None:
                    self._write(line + b"\n")
                else:
                    level, text = found
                    _emit(level, text)
                continue
            newline = self.pending.find(b"\n")
            if newline < 0:
                self._write(self.pending)
                self.at_line_start = self.pending.endswith((b"\n", b"\r"))
                self.pending = b""
                return
            self._write(self.pending[: newline + 1])
            self.pending, self.at_line_start = self.pending[newline + 1 :], True


def _emit(level: str, text: str) -> None:
    """One native line as a log record (the handler writes to sys.stderr: the real one by then or
    the pipe, where the line is no longer in the native format and is forwarded)."""
    if level in ("ERROR", "WARNING"):
        log.warning(f"fastpolicy: the decoder said: {text}")
    else:
        log.debug(f"fastpolicy: the decoder said: {text}")


@contextlib.contextmanager
def captured():
    """Route fd 2 through the filter for the block (nested: the outer one stays). Main process
    only; a failure to set up the pipe leaves stderr as it was."""
    if _STATE["saved"] is not None:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        yield
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    _STATE["saved"] = saved
    filter_ = _Filter(saved)

    def pump() -> None:
        with contextlib.suppress(OSError):
            while True:
                if not select.select([read_end], [], [], _HOLD_SECONDS)[0]:
                    filter_.flush()  # a held start of a line that never finished
                    continue
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                filter_.feed(chunk)
        with contextlib.suppress(OSError):
            filter_.feed(b"", final=True)

    reader = threading.Thread(target=pump, name="fastpolicy-native-log", daemon=True)
    reader.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        _STATE["saved"] = None
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees its end
        reader.join(timeout=5)
        os.close(read_end)
        os.close(saved)
