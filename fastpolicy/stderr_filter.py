"""The filter process behind :mod:`fastpolicy.native_log`: stdin → the real stderr (its stdout).

Run as ``python -S fastpolicy/stderr_filter.py`` with the pipe as stdin and the real stderr as
stdout; it imports nothing of fastpolicy (a separate process, so it keeps draining if the parent
aborts or is killed: a native crash's last words are not lost, and nothing in the parent holds the
GIL it would need). A native log line (``\\x1b[0;31m[ERROR] \\x1b[0m[png_parser] text``) becomes
``fastpolicy: the decoder said: png_parser: text`` (errors and warnings; other levels are
dropped); every other byte is forwarded as it arrives, progress bars' ``\\r`` updates included.
It exits when every writer of the pipe has closed it (the parent and any child that inherited it).
"""

from __future__ import annotations

import os
import re
import select
import sys

NATIVE = re.compile(rb"^(?:\x1b\[[0-9;]*m)?\[(ERROR|WARNING|INFO|DEBUG|TRACE)\] ?(?:\x1b\[[0-9;]*m)?(.*?)\r?$")
"""One native log line: an optional colour code, ``[LEVEL]``, an optional reset code, the text."""
MARKERS = tuple(
    colour + f"[{level}]".encode()
    for level in ("ERROR", "WARNING", "INFO", "DEBUG", "TRACE")
    for colour in (b"", b"\x1b[0;31m", b"\x1b[0;33m", b"\x1b[0;32m", b"\x1b[0;36m", b"\x1b[0;37m", b"\x1b[0;35m")
)
"""How a native line starts; bytes at a line's start that could still become one are held back."""
HOLD_SECONDS = 0.2
"""How long bytes that could start a native line wait for the rest of it before being forwarded."""


def native_text(line: bytes) -> tuple[str, str] | None:
    """``(level, text)`` of a native log line (without its newline), None for any other line."""
    match = NATIVE.match(line)
    if match is None:
        return None
    text = match.group(2).decode("utf-8", "replace").strip()
    text = re.sub(r"^\[([^\]]+)\]\s*", r"\1: ", text)  # "[png_parser] msg" -> "png_parser: msg"
    return match.group(1).decode(), text


def _could_be_marker(head: bytes) -> bool:
    return any(marker.startswith(head) or head.startswith(marker) for marker in MARKERS)


class Filter:
    """Splits bytes into native lines (rewritten) and everything else (forwarded) onto ``out_fd``."""

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
                found = native_text(line)
                if found is None:
                    self._write(line + b"\n")
                elif found[0] in ("ERROR", "WARNING"):
                    self._write(f"fastpolicy: the decoder said: {found[1]}\n".encode())
                continue
            newline = self.pending.find(b"\n")
            if newline < 0:
                self.flush()
                return
            self._write(self.pending[: newline + 1])
            self.pending, self.at_line_start = self.pending[newline + 1 :], True


def pump(in_fd: int, out_fd: int) -> None:
    """Filter ``in_fd`` onto ``out_fd`` until every writer has closed it."""
    filter_ = Filter(out_fd)
    try:
        while True:
            if not select.select([in_fd], [], [], HOLD_SECONDS)[0]:
                filter_.flush()  # a held start of a line that never finished
                continue
            chunk = os.read(in_fd, 65536)
            if not chunk:
                break
            filter_.feed(chunk)
        filter_.feed(b"", final=True)
    except (OSError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; this drains until it is done
    pump(sys.stdin.fileno(), sys.stdout.fileno())
