"""Run logs: a CSV of training progress, TensorBoard scalars and a loss-curve PNG."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hqdm.files import atomic_path, atomic_write_text

__all__ = ["CSV_COLUMNS", "LogRow", "MetricsLog", "plot_loss_curve", "read_log"]

CSV_COLUMNS = ("step", "epoch", "loss", "images_per_s", "wall_time")


@dataclass(frozen=True)
class LogRow:
    step: int
    epoch: int  # 1-based epoch the step belongs to
    loss: float  # mean loss over the steps since the previous row
    images_per_s: float
    wall_time: float  # seconds of training since the run started (summed over resumes)

    def as_csv(self) -> list[str]:
        return [
            str(self.step),
            str(self.epoch),
            repr(self.loss),
            f"{self.images_per_s:.3f}",
            f"{self.wall_time:.3f}",
        ]


def read_log(path: Path) -> list[LogRow]:
    """The rows of ``log.csv``; rows a crash tore or garbled are skipped with a warning (a resume then
    rewrites the file without them)."""
    if not path.is_file():
        return []
    rows, torn = [], 0
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for r in csv.DictReader(handle):
            try:
                rows.append(
                    LogRow(
                        int(r["step"]),
                        int(r["epoch"]),
                        float(r["loss"]),
                        float(r["images_per_s"]),
                        float(r["wall_time"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                torn += 1
    if torn:
        warnings.warn(f"{path}: skipped {torn} unreadable row(s), torn by an interrupted write", stacklevel=2)
    return rows


class MetricsLog:
    """Appends rows to ``log.csv`` and TensorBoard; on resume, rows past the checkpoint are dropped
    so that the log of a resumed run reads like an uninterrupted one."""

    def __init__(self, run_dir: Path, *, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.csv_path = run_dir / "log.csv"
        kept = [r for r in read_log(self.csv_path) if resume_step is not None and r.step <= resume_step]
        lines = [",".join(CSV_COLUMNS)] + [",".join(r.as_csv()) for r in kept]
        atomic_write_text(self.csv_path, "\n".join(lines) + "\n")
        # purge_step hides TensorBoard events written after the checkpoint by the interrupted process
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)

    def write(self, row: LogRow) -> None:
        with self.csv_path.open("a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(row.as_csv())
        self.writer.add_scalar("train/loss", row.loss, row.step)
        self.writer.add_scalar("train/images_per_s", row.images_per_s, row.step)

    def add_grid(self, tag: str, grid: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, grid, step, dataformats="HW" if grid.ndim == 2 else "HWC")

    def close(self) -> None:
        self.writer.close()


def plot_loss_curve(rows: list[LogRow], path: Path, *, title: str = "training loss") -> None:
    """Loss per logged interval (and a running mean) against the step."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; the file is the product
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)  # fixed margins: tight_layout is slow
    if rows:
        steps = np.array([r.step for r in rows])
        loss = np.array([r.loss for r in rows])
        ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss")
        window = len(loss) // 20
        if window > 1:
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, lw=1.6, label=f"running mean of {window} rows")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("P2-weighted loss")
    ax.set_title(title)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
