"""Benchmark of how a training step is best spread over the cores: one process with every core, or
several processes at once with a share each (``hqdm study --workers``).

Both layouts run the same measurement (:func:`hqdm.bench.compute.measure_train_step`) in fresh
subprocesses; the parallel layout starts ``workers`` of them at the same moment, each with
``cores // workers`` threads. The figure of merit is total training steps per second across processes,
and the ratio compares the two layouts of one model, measured one after the other in the same run.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

from hqdm.bench import measure
from hqdm.bench.results import Table
from hqdm.experiments.parallel_cells import THREAD_VARIABLES

__all__ = ["format_workers", "workers_benchmark"]


def _layout(processes: int, threads: int) -> str:
    return f"{processes} x {threads} thread{'s' if threads > 1 else ''}"


DEFAULT_MODELS = ("unet", "qvunet-1hq")  # the study's first pair


def workers_benchmark(
    models: tuple[str, ...] | None = None,
    paths: tuple[str, ...] = ("bf16",),
    batch: int = 128,
    seconds: float = 10.0,
    workers: int | None = None,
    keep_heap: bool = True,
    echo: Callable[[str], None] = print,
) -> Table:
    """Per model (default :data:`DEFAULT_MODELS`) and path: one process with every core, then ``workers``
    processes (default: one per core) at once with the cores shared out."""
    cores = os.cpu_count() or 1
    workers = workers or cores
    threads = max(1, cores // workers)
    info = {"machine": measure.machine_line(), "batch": batch, "cores": cores, "workers": workers}
    table = Table("workers", info)
    echo(_head(info))
    for name in models or DEFAULT_MODELS:
        for path in paths:
            options = {"batch": batch, "seconds": seconds, "path": path, "keep_heap": keep_heap}
            for processes, share in ((1, cores), (workers, threads)):
                env = dict.fromkeys(THREAD_VARIABLES, str(share))
                measured = measure.run_in_subprocesses(
                    "compute.measure_train_step", processes, env, model_name=name, **options
                )
                row = {"model": name, "path": path, "processes": processes, "threads": share}
                table.rows.append({**row, "seconds": [m["seconds"] for m in measured]})
    for line in _table(info, table.rows):
        echo(line)
    return table


def _head(info: dict) -> str:
    return (
        f"# parallel training benchmark, batch {info['batch']}, {info['cores']} cores, "
        f"{info['workers']} workers ({info['machine']})"
    )


def _table(info: dict, rows: list[dict]) -> list[str]:
    lines = [
        "| model | path | layout | s/step per process | steps/s, all processes | images/s | "
        "throughput vs one process |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    single: dict[tuple[str, str], float] = {}
    for row in rows:
        rate = sum(1.0 / s for s in row["seconds"])
        key = (row["model"], row["path"])
        single.setdefault(key, rate)  # the one-process layout comes first
        lines.append(
            f"| {row['model']} | {row['path']} | {_layout(row['processes'], row['threads'])} | "
            f"{statistics.mean(row['seconds']):.3f} | {rate:.2f} | {rate * info['batch']:.0f} | "
            f"{rate / single[key]:.2f}x |"
        )
    return lines


def format_workers(info: dict, rows: list[dict]) -> list[str]:
    return [_head(info), *_table(info, rows)]
