"""What every benchmark shares: timing a call with its peak memory, running a measurement in a fresh
interpreter, and the line that says what machine the numbers come from.

A measurement is a function ``measure_*`` of a module of this package that returns a JSON-able dict; it
runs in a subprocess (:func:`run_in_subprocess`) so that its peak memory (resident set growth over the
process's state just before the timed work) is its own, and so that thread and allocator settings can be
given per measurement.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch

__all__ = ["machine_line", "run_in_subprocess", "run_in_subprocesses", "time_call"]


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere, where memory is not reported)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


class _PeakMemory:
    """Samples the resident set every millisecond in a thread; ``growth`` = peak minus the start value.

    ``ru_maxrss`` cannot be used: the peak reached while importing torch hides smaller workloads.
    """

    def __enter__(self) -> _PeakMemory:
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def growth(self) -> float:
        return max(0.0, self.peak - self.start)


def time_call(
    fn: Callable[[], None], min_seconds: float, min_repeats: int, warmup: int = 1
) -> tuple[float, float]:
    """Seconds per call (after ``warmup`` calls) and the peak memory growth over all calls, in MB."""
    with _PeakMemory() as memory:
        for _ in range(warmup):  # circuit plans, allocator
            fn()
        start, repeats = time.perf_counter(), 0
        while repeats < min_repeats or time.perf_counter() - start < min_seconds:
            fn()
            repeats += 1
    return (time.perf_counter() - start) / repeats, memory.growth


def run_in_subprocesses(
    kind: str, count: int, extra_env: dict[str, str] | None = None, **kwargs
) -> list[dict]:
    """Run ``count`` copies of one measurement at the same time, each in a fresh interpreter; return
    their JSON results."""
    module, _, function = kind.rpartition(".")  # "compute.measure_train_step": hqdm.bench.compute's
    code = f"import json, hqdm.bench.{module} as b; print(json.dumps(b.{function}(**{kwargs!r})))"
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}
    env.update(extra_env or {})
    started = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(count)
    ]
    results = []
    for process in started:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"benchmark subprocess failed ({kind} {kwargs}):\n{stderr[-2000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def run_in_subprocess(kind: str, extra_env: dict[str, str] | None = None, **kwargs) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    return run_in_subprocesses(kind, 1, extra_env, **kwargs)[0]


def machine_line() -> str:
    """What the numbers depend on, including how busy the machine was (1-minute load average)."""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{load}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
