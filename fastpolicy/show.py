"""``fastpolicy show RUN_DIR``: what a run is, how far it got, what it found, where its files are.

Works for adversarial searches (any Table 4 mode), AWS searches and final trainings,
finished or not: it reads the run's ``run.json`` (kind and settings), its CSV logs
(progress), ``summary.json`` (finished runs), ``schedule.json`` / ``policy.json`` (what it
found), and lists its plots and files. It never loads a checkpoint.

It reads only regular files of at most :data:`MAX_BYTES` (a FIFO left in a run folder never
blocks it), and a file it cannot use — unreadable, corrupt, of the wrong JSON shape — is named
on one ``warning`` line instead of a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys

from .errors import UserError
from .registry import OPS
from .train.rundir import kind_of, resume_command

MAX_BYTES = 64 * 2**20
"""The largest run file ``show`` reads (logs and summaries of long runs are a few MiB)."""

_DESCRIBED = (
    "run.json",
    "summary.json",
    "metrics.csv",
    "stage1.csv",
    "schedule.json",
    "policy.json",
    "split.json",
    "checkpoint.pt",
    "stage1.pt",
    "shared.pt",
    "distributions.npz",
)


def _read(path: str) -> tuple[str | None, str | None]:
    """``(text, None)``; ``(None, None)`` without such a file; ``(None, problem)`` when it is not a
    regular file, larger than :data:`MAX_BYTES`, unreadable or not UTF-8. Opened without
    blocking and checked before reading, so a FIFO or a device is never read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"unreadable ({error.strerror or error})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        raw = handle.read(MAX_BYTES + 1) if info.st_size <= MAX_BYTES else b""
    if info.st_size > MAX_BYTES or len(raw) > MAX_BYTES:
        return None, f"larger than {MAX_BYTES} bytes, more than show reads"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text (byte {error.start})"


def _json(path: str, problems: list[str]) -> tuple[dict, str | None]:
    """The JSON object in ``path`` ({} without the file), and what is wrong with it (None: nothing),
    also appended to ``problems`` as ``"<file>: <problem>"``."""
    text, problem = _read(path)
    data = None
    if text is not None:
        try:
            data = json.loads(text)
        except RecursionError:
            problem = "corrupt (JSON nested too deeply)"
        except ValueError as error:
            problem = f"corrupt ({error})"
        else:
            if not isinstance(data, dict):
                problem = f"corrupt (a JSON {type(data).__name__}, not an object)"
    if problem:
        problems.append(f"{os.path.basename(path)}: {problem}")
    return (data if isinstance(data, dict) and not problem else {}), problem


def _rows(path: str, problems: list[str]) -> list[dict]:
    """The CSV log's rows ([] without the file; problems as in :func:`_json`)."""
    text, problem = _read(path)
    rows: list[dict] = []
    if text is not None:
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as error:
            problem = f"corrupt CSV ({error})"
    if problem:
        problems.append(f"{os.path.basename(path)}: {problem}")
    return rows


def _typed(data: dict, key: str, container: type, source: str, problems: list[str]):
    """``data[key]`` if it is a ``container`` (dict or list); ``container()`` if absent or null, and also
    when of another type, which ``problems`` then names."""
    value = data.get(key)
    if value is None or isinstance(value, container):
        return container() if value is None else value
    expected = "object" if container is dict else "array"
    problems.append(f"{source}: {key!r} is a {type(value).__name__}, not a JSON {expected}")
    return container()


def _policy_text(policy) -> str | None:
    """A schedule entry's sub-policies as ``op@bin → op@bin; …`` (None: not the expected shape)."""
    subs = policy.get("sub_policies") if isinstance(policy, dict) else None
    if not isinstance(subs, list) or not all(isinstance(sub, list) for sub in subs):
        return None
    if not all(isinstance(c, dict) for sub in subs for c in sub):
        return None
    space = policy.get("space", "adversarial")

    def choice(c: dict) -> str:  # an op without a magnitude is named alone, as in samples.png
        spec = OPS.get(str(c.get("op")))
        if spec is not None and space in spec.magnitudes and spec.magnitudes[space] is None:
            return str(c.get("op"))
        return f"{c.get('op')}@{c.get('bin')}"

    return "; ".join(" → ".join(choice(c) for c in sub) for sub in subs)


def _kind(folder: str, marker: dict) -> str:
    kind = marker.get("fastpolicy_run")
    if isinstance(kind, str):
        return kind_of(kind)  # "adversarial-<mode>" in runs written before the kind was one word
    if any(os.path.exists(os.path.join(folder, f)) for f in ("shared.pt", "stage1.pt", "stage1.csv")):
        return "aws"
    return "adversarial" if os.path.exists(os.path.join(folder, "schedule.json")) else "train"


def _finished(folder: str, kind: str, summary: dict) -> bool:
    """Whether the run completed, from what it wrote last: an AWS search's final ``summary.json``
    (its ``loops``, written after ``policy.json``; stage 1 alone is not a finished search), any
    other run's ``summary.json`` with its ``epochs``."""
    if kind == "aws":
        return isinstance(summary.get("loops"), list) and os.path.isfile(os.path.join(folder, "policy.json"))
    return isinstance(summary.get("epochs"), list)


CHECKPOINTS = ("checkpoint.pt", "stage1.pt", "shared.pt")
"""The files a run resumes from (any of them)."""


def _resume_hint(kind: str, folder: str) -> str:
    """The command that continues the run (its settings come from its ``config.yaml``), or, when it
    stopped before its first checkpoint, the command that starts it again in the same folder."""
    if any(os.path.exists(os.path.join(folder, name)) for name in CHECKPOINTS):
        return f"resume with: {resume_command(kind, folder)}"
    start = resume_command(kind, folder).replace(" --resume", " --overwrite")
    return f"stopped before its first checkpoint, nothing to resume; start it again with: {start}"


def _float(row: dict, key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def describe(folder: str) -> list[str]:
    """The lines ``fastpolicy show`` prints for the run in ``folder``."""
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: no such run folder")
    problems: list[str] = []
    marker, _ = _json(os.path.join(folder, "run.json"), problems)
    summary, summary_problem = _json(os.path.join(folder, "summary.json"), [])  # said on the status line
    if not marker and not summary and not os.path.exists(os.path.join(folder, "metrics.csv")):
        raise UserError(f"{folder}: not a fastpolicy run (no run.json, summary.json or metrics.csv)")
    kind = _kind(folder, marker)
    # the run's start (run.json) overlaid with its last summary: a resumed run may have changed the
    # settings a resume may change (--loops), and the summary is written after the marker
    settings = _typed(marker, "settings", dict, "run.json", problems) | _typed(
        summary, "config", dict, "summary.json", problems
    )
    if summary_problem:
        status = f"unknown: summary.json is {summary_problem}, so whether the run finished cannot be told"
    else:
        status = "finished" if _finished(folder, kind, summary) else f"not finished ({_resume_hint(kind, folder)})"
    lines = [
        f"run       {os.path.abspath(folder)}",
        f"kind      {kind}" + (f" (started {marker['started']})" if "started" in marker else ""),
        f"status    {status}",
    ]
    data = settings.get("data") or "Fashion-MNIST (embedded default)"
    shown = {
        k: settings[k]
        for k in (
            "preset",
            "model",
            "mode",
            "epochs",
            "M",
            "batch",
            "train_subset",
            "seed",
            "policy",
            "loops",
            "stage1_epochs",
            "finetune_epochs",
            "parameterization",
            "fill",
            "magnitude_scale",
            "controller_window",
        )
        if settings.get(k) is not None
    }
    lines.append(f"data      {data}")
    lines.append("settings  " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    preset = _typed(summary, "preset", dict, "summary.json", problems)
    if kind == "aws":
        stage1 = _rows(os.path.join(folder, "stage1.csv"), problems)
        loops = _rows(os.path.join(folder, "metrics.csv"), problems)
        planned = _typed(summary, "stages", dict, "summary.json", problems).get("loops") or settings.get("loops")
        lines.append(
            f"progress  stage 1: {len(stage1)} epoch(s); stage 2: {len(loops)} loop(s)"
            + (f" of {planned}" if planned else "")
        )
        if loops:
            last = loops[-1]
            lines.append(
                f"latest    loop {last.get('loop')}: reward {_fmt(_float(last, 'reward'))}, baseline "
                f"{_fmt(_float(last, 'baseline'))}, entropy {_fmt(_float(last, 'entropy'))}"
            )
        policy = os.path.join(folder, "policy.json")
        if os.path.lexists(policy):
            from .distribution import AWSDistribution, pair_label

            try:
                top = AWSDistribution.load(policy).top_pairs(5)
                lines.append("top pairs " + "; ".join(f"{pair_label(a, b)} ({p:.3g})" for a, b, p in top))
            except (ValueError, OSError, RecursionError) as error:
                lines.append(f"top pairs unreadable policy.json: {error}")
    else:
        rows = _rows(os.path.join(folder, "metrics.csv"), problems)
        planned = preset.get("epochs") or settings.get("epochs")
        lines.append(f"progress  {len(rows)} epoch(s)" + (f" of {planned}" if planned else ""))
        if rows:
            last = rows[-1]
            accuracy = _float(last, "val_accuracy")
            lines.append(
                f"latest    epoch {last.get('epoch')}: train loss {_fmt(_float(last, 'train_loss'))}, held-out "
                f"accuracy {_fmt(accuracy)}"
                + (f" (error {100 * (1 - accuracy):.2f} %)" if accuracy is not None else "")
            )
            if "controller_kl_from_start" in last:
                kl = _float(last, "controller_kl_from_start")
                # A KL is ≥ 0; its estimate from sampled policies can dip below by rounding noise.
                lines.append(
                    f"controller KL from its start {_fmt(None if kl is None else max(kl, 0.0))} nats, "
                    f"entropy {_fmt(_float(last, 'controller_entropy'))}"
                )
                found = summary.get("controller_null") if isinstance(summary, dict) else None
                if isinstance(found, dict):
                    lines.append(_null_line(found, problems))
            rewards = []  # (the policy's loss, its index), hardest first; NaN (no reward) left out
            for key in last:
                index = key.split("/", 1)[1] if isinstance(key, str) and key.startswith("reward/") else ""
                value = _float(last, key)
                if index.isdigit() and value is not None and value == value:
                    rewards.append((value, int(index)))
            rewards.sort(reverse=True)
            schedule_data, _ = _json(os.path.join(folder, "schedule.json"), problems)
            schedule = _typed(schedule_data, "epochs", list, "schedule.json", problems)
            if rewards and schedule and kind == "adversarial":
                last_epoch = schedule[-1] if isinstance(schedule[-1], dict) else {}
                policies = _typed(last_epoch, "policies", list, "schedule.json", problems)
                best = rewards[0][1]
                if best < len(policies):
                    text = _policy_text(policies[best])
                    if text is None:
                        problems.append(f"schedule.json: the last epoch's policy {best} is not a policy")
                    else:
                        lines.append(f"hardest   last epoch's policy {best} (loss {rewards[0][0]:.4f}): {text}")
    files = sorted(f for f in os.listdir(folder) if f.endswith((".png", ".json", ".csv", ".npz", ".pt")))
    lines.append("plots     " + (", ".join(os.path.join(folder, f) for f in files if f.endswith(".png")) or "none yet"))
    lines.append(
        "files     "
        + ", ".join(f for f in files if not f.endswith(".png"))
        + (", tensorboard/" if os.path.isdir(os.path.join(folder, "tensorboard")) else "")
    )
    lines += [f"warning   {problem}" for problem in dict.fromkeys(problems)]
    return lines


def _null_line(found: dict, problems: list[str]) -> str:
    """``against noise …``: the run's KL beside its shuffled-reward null (``summary.json``'s
    ``controller_null``)."""
    p95, draws, above = found.get("null_p95"), found.get("null_kl"), found.get("above_null")
    if not isinstance(p95, (int, float)) or not isinstance(draws, list) or not isinstance(above, bool):
        problems.append("summary.json: controller_null is not a null (null_p95, null_kl, above_null)")
        return "against noise unreadable"
    verdict = (
        "moved further than shuffled rewards move it: it learned from its rewards"
        if above
        else "no further than shuffled rewards move it: not shown to learn"
    )
    return (
        f"against noise {verdict} (shuffled-reward null over {len(draws)} replays: "
        f"95th percentile {_fmt(float(p95))} nats)"
    )


def write(lines: list[str], stream=None) -> None:
    """Print ``lines`` to ``stream`` (stdout). A reader that stops early (``fastpolicy show … |
    head``) ends the output quietly: no BrokenPipeError, and stdout is pointed at the null
    device so the interpreter's last flush cannot raise it either."""
    stream = sys.stdout if stream is None else stream
    try:
        stream.write("\n".join(lines) + "\n")
        stream.flush()
    except BrokenPipeError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # not a real file: nothing left to flush at exit


__all__ = ["MAX_BYTES", "describe", "write"]
