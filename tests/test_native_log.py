"""DALI's native log lines become the project's messages on the command line (fastpolicy.native_log);
every other byte reaches the real stderr unchanged and without waiting for a newline."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from fastpolicy import native_log

TEXT = b"Could not retrieve image info from png stream - Unexpected end of stream"
RAW = b"\x1b[0;31m[ERROR] \x1b[0m[png_parser] " + TEXT + b"\n"


def _filtered(chunks: list[bytes], caplog) -> tuple[bytes, list[str]]:
    read_end, write_end = os.pipe()
    caplog.clear()
    filter_ = native_log._Filter(write_end)
    for chunk in chunks:
        filter_.feed(chunk)
    filter_.feed(b"", final=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        return handle.read(), [r.getMessage() for r in caplog.records]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()


@pytest.fixture
def to_caplog():
    """The module's records, whether or not the CLI's setup stopped "fastpolicy" propagating."""
    logger, handler = logging.getLogger("fastpolicy.native_log"), _Records()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize("cut", [1, 3, 9, 17, len(RAW) - 1])
def test_a_native_line_split_anywhere_becomes_one_message(cut, to_caplog):
    out, messages = _filtered([b"before\n", RAW[:cut], RAW[cut:], b"after\n"], to_caplog)
    assert out == b"before\nafter\n"
    assert messages == [f"fastpolicy: the decoder said: png_parser: {TEXT.decode()}"]


def test_other_bytes_pass_unchanged_and_at_once(to_caplog):
    progress = [b"epoch 0:  10%|#", b"\repoch 0:  20%|##", b"\r[not a log] [ERRORS] x\n", b"[INFO tail"]
    filter_read, filter_write = os.pipe()
    filter_ = native_log._Filter(filter_write)
    filter_.feed(progress[0])
    assert os.read(filter_read, 100) == progress[0]  # forwarded before any newline (a progress bar)
    os.close(filter_write)
    os.close(filter_read)
    out, messages = _filtered(progress, to_caplog)
    assert out == b"".join(progress) and messages == []  # "[INFO tail" held, then forwarded at the end


def test_the_cli_turns_dalis_raw_error_into_one_of_its_messages(tmp_path):
    """A truncated PNG that passes the header check: DALI meets it mid-epoch and prints a raw,
    coloured ``[ERROR] [png_parser]`` line on fd 2; the command prints the project's lines only."""
    from PIL import Image

    folder = tmp_path / "pets"
    for c in range(2):
        (folder / f"c{c}").mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (24, 24), (40 * i, 100 * c, 90)).save(folder / f"c{c}" / f"{i}.png")
    victim = folder / "c0" / "3.png"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    command = [sys.executable, "-m", "fastpolicy", "train", "--data", str(folder), "--epochs", "1"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "run"), "--no-progress", "--verify", "none"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "[ERROR]" not in done.stderr and "\x1b[" not in done.stderr, done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if "the decoder said" in line]
    assert said and all("png_parser: " in line for line in said), done.stdout + done.stderr
    assert done.stderr.count("fastpolicy: error:") == 1 and "3.png" in done.stderr
