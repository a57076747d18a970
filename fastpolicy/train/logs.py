"""Run logs shared by the searches: a CSV row per epoch (or loop), TensorBoard scalars, printed paths."""

from __future__ import annotations

import csv
import os


class RunLog:
    """Appends metric rows to ``<out>/<name>.csv`` and mirrors them to TensorBoard
    (``<out>/tensorboard``; skipped with a note if TensorBoard is not installed).

    Rows are dicts of scalars (or lists of scalars, logged as ``key/i``); the CSV's
    columns are fixed by the first row written (a resumed run appends to the same file).
    """

    def __init__(self, out: str, name: str = "metrics", enabled: bool = True):
        self.path = os.path.join(out, f"{name}.csv")
        self._fields = None
        self.enabled = enabled  # False on ranks other than 0: nothing is written
        if not enabled:
            self._writer = None
            return
        if os.path.exists(self.path):
            with open(self.path, newline="") as handle:
                self._fields = next(csv.reader(handle), None)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.path.join(out, "tensorboard"))
        except ImportError:
            print("fastpolicy: TensorBoard is not installed; logging to CSV only")
            self._writer = None

    @staticmethod
    def _flat(row: dict) -> dict:
        flat = {}
        for key, value in row.items():
            if isinstance(value, (list, tuple)):
                flat.update({f"{key}/{i}": v for i, v in enumerate(value)})
            else:
                flat[key] = value
        return flat

    def log(self, step: int, row: dict) -> None:
        if not self.enabled:
            return
        flat = self._flat(row)
        if self._fields is None:
            self._fields = list(flat)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self._fields)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self._fields, extrasaction="ignore").writerow(flat)
        if self._writer is not None:
            for key, value in flat.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def rows(self) -> list[dict]:
        """The CSV's rows so far (values as strings)."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows (a resumed run drops rows logged after its checkpoint)."""
        kept = self.rows()[:rows]
        if self._fields is None or not self.enabled:
            return
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self._fields)
            writer.writeheader()
            writer.writerows(kept)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
