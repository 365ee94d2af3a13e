"""Run independent experiment cells as parallel processes, the machine's cores shared out between them.

The U-Net works on maps of 10-40 channels: much of a training step is per-operator overhead and memory
traffic that a second thread does not halve. On 2 cores, two single-threaded training processes together
do about 1.5x the steps per second of one process with two threads (``hqdm bench workers`` measures it on
the machine at hand), so a study whose cells are independent finishes sooner as parallel processes.

Each cell is one command line. At most ``workers`` run at a time, each with ``threads`` OpenMP/MKL threads;
its output goes to its own log file, and the parent prints one line when a cell starts and one when it
ends. Interrupting the parent stops the running cells (they are resumable commands).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cell", "default_threads", "run_cells"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Cell:
    name: str  # for the progress lines, e.g. "unet seed 1"
    argv: tuple[str, ...]
    log: Path  # the cell's stdout and stderr, appended


def default_threads(workers: int, cores: int | None = None) -> int:
    """The cores shared out evenly, at least one thread per worker."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


def _start(cell: Cell, threads: int) -> subprocess.Popen[bytes]:
    cell.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    env.setdefault("OMP_WAIT_POLICY", "passive")  # spinning workers would steal the other cells' cores
    with cell.log.open("ab") as log:
        return subprocess.Popen(cell.argv, stdout=log, stderr=subprocess.STDOUT, env=env)


def run_cells(
    cells: Sequence[Cell],
    *,
    workers: int,
    threads: int,
    log: Callable[[str], None] = print,
    poll_seconds: float = 1.0,
) -> list[Cell]:
    """Run every cell, at most ``workers`` at once; return the cells that failed (non-zero exit)."""
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be at least 1, got {workers} and {threads}")
    pending, running, failed = list(cells), {}, []
    try:
        while pending or running:
            while pending and len(running) < workers:
                cell = pending.pop(0)
                log(f"{cell.name}: started ({threads} thread(s); log {cell.log})")
                running[cell] = (_start(cell, threads), time.monotonic())
            time.sleep(poll_seconds)
            for cell, (process, started) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[cell]
                minutes = (time.monotonic() - started) / 60
                if code == 0:
                    log(f"{cell.name}: done in {minutes:.1f} min")
                else:
                    failed.append(cell)
                    log(f"{cell.name}: FAILED with exit code {code} after {minutes:.1f} min; see {cell.log}")
    finally:
        for process, _ in running.values():  # interrupted: stop the cells still running
            process.terminate()
        for process, _ in running.values():
            process.wait()
    return failed
