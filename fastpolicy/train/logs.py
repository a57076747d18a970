"""Run logs shared by the searches: a CSV row per epoch (or loop), TensorBoard scalars."""

from __future__ import annotations

import csv
import io
import os

from .. import atomic
from ..log import get as get_logger

log = get_logger(__name__)


class RunLog:
    """Metric rows in ``<out>/<name>.csv``, mirrored to TensorBoard (``<out>/tensorboard``;
    skipped with a note if TensorBoard is not installed).

    Rows are dicts of scalars (or lists of scalars, logged as ``key/i``). The CSV is
    rewritten whole and atomically after every row, so it always has exactly one header —
    the union of every row's columns, in order of first appearance — and a crash never
    leaves half a row. A resumed run reads the rows already there and drops those logged
    after its checkpoint (:meth:`truncate`).
    """

    def __init__(self, out: str, name: str = "metrics", enabled: bool = True):
        self.path = os.path.join(out, f"{name}.csv")
        self.enabled = enabled  # False on ranks other than 0: nothing is written
        self._rows: list[dict] = self._read() if enabled else []
        self._writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.path.join(out, "tensorboard"))
        except ImportError:
            log.warning("fastpolicy: TensorBoard is not installed; logging to CSV only")

    def _read(self) -> list[dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="", encoding="utf-8") as handle:
            return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]

    @staticmethod
    def _flat(row: dict) -> dict:
        flat = {}
        for key, value in row.items():
            if isinstance(value, (list, tuple)):
                flat.update({f"{key}/{i}": v for i, v in enumerate(value)})
            else:
                flat[key] = value
        return flat

    def _write(self) -> None:
        fields = list(dict.fromkeys(key for row in self._rows for key in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fields)
        writer.writeheader()
        writer.writerows(self._rows)
        atomic.write_text(self.path, text.getvalue())

    def log(self, step: int, row: dict) -> None:
        if not self.enabled:
            return
        flat = self._flat(row)
        self._rows.append(flat)
        self._write()
        if self._writer is not None:
            for key, value in flat.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def rows(self) -> list[dict]:
        """The CSV's rows so far (values as strings)."""
        return self._read()

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows (a resumed run drops rows logged after its checkpoint;
        0 starts the log afresh)."""
        if not self.enabled:
            return
        self._rows = self._rows[:rows]
        if self._rows:
            self._write()
        elif os.path.exists(self.path):
            os.remove(self.path)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
