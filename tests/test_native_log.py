"""DALI's native log lines become the project's messages on the command line (fastpolicy.native_log,
fastpolicy.stderr_filter); every other byte reaches the real stderr unchanged, without waiting for
a newline, and even when the process dies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fastpolicy import stderr_filter

TEXT = b"Could not retrieve image info from png stream - Unexpected end of stream"
RAW = b"\x1b[0;31m[ERROR] \x1b[0m[png_parser] " + TEXT + b"\n"
SAID = b"fastpolicy: the decoder said: png_parser: " + TEXT + b"\n"


def _filtered(chunks: list[bytes]) -> bytes:
    read_end, write_end = os.pipe()
    filter_ = stderr_filter.Filter(write_end)
    for chunk in chunks:
        filter_.feed(chunk)
    filter_.feed(b"", final=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("cut", [1, 3, 9, 17, len(RAW) - 1])
def test_a_native_line_split_anywhere_becomes_one_message(cut):
    assert _filtered([b"before\n", RAW[:cut], RAW[cut:], b"after\n"]) == b"before\n" + SAID + b"after\n"


def test_other_bytes_pass_unchanged_and_at_once_and_native_info_is_dropped():
    progress = [b"epoch 0:  10%|#", b"\repoch 0:  20%|##", b"\r[not a log] [ERRORS] x\n", b"[INFO tail"]
    read_end, write_end = os.pipe()
    filter_ = stderr_filter.Filter(write_end)
    filter_.feed(progress[0])
    assert os.read(read_end, 100) == progress[0]  # forwarded before any newline (a progress bar)
    os.close(write_end)
    os.close(read_end)
    assert _filtered(progress) == b"".join(progress)  # "[INFO tail" held, then forwarded at the end
    assert _filtered([b"\x1b[0;32m[INFO] \x1b[0m[nvimgcodec] Registering\n", b"x\n"]) == b"x\n"


def _script(body: str) -> subprocess.CompletedProcess:
    code = "import os, sys\nfrom fastpolicy import native_log\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_captured_restores_stderr_and_loses_nothing_when_the_process_dies():
    raw = RAW.decode("latin-1")
    done = _script(
        f"""
        with native_log.captured():
            os.write(2, {RAW!r})
            print("python's own", file=sys.stderr, flush=True)
            assert native_log.real_stderr_fd() != 2
        os.write(2, b"after\\n")
        with native_log.captured():
            os.write(2, b"last words before an abort\\n")
            os.abort()
        """
    )
    assert done.returncode != 0 and raw not in done.stderr.decode("latin-1")
    assert done.stderr == SAID + b"python's own\nafter\nlast words before an abort\n", done.stderr


def test_a_child_holding_the_pipe_does_not_hang_the_exit():
    import time

    start = time.perf_counter()
    done = _script(
        """
        import subprocess
        with native_log.captured():
            late = "import time, os; time.sleep(1.5); os.write(2, b'child\\\\n')"
            child = subprocess.Popen([sys.executable, "-c", late])
        print("parent done", file=sys.stderr, flush=True)
        child.wait()
        """
    )
    assert done.returncode == 0 and b"parent done\n" in done.stderr and b"child\n" in done.stderr, done.stderr
    assert time.perf_counter() - start < 20


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
    said = [line for line in done.stderr.splitlines() if "the decoder said" in line]
    assert said and all("png_parser: " in line for line in said), done.stderr
    assert done.stderr.count("fastpolicy: error:") == 1 and "3.png" in done.stderr
