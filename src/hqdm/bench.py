"""Benchmarks: the quantum engine against PennyLane, and a training step of every registered model.

Every figure is measured in this run, each measurement in a fresh subprocess so that its peak memory
(resident set growth over the process's state just before the timed work) is its own. Ratios compare
numbers measured in the same run. Run them on an otherwise idle machine with OMP_WAIT_POLICY=passive.
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
from dataclasses import dataclass

import torch

ANSATZ_ANGLES = {"hqconv": 28, "fqconv": 24}


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


def _time(fn: Callable[[], None], min_seconds: float, min_repeats: int) -> tuple[float, float]:
    """Seconds per call (after one warm-up call) and the peak memory growth over all calls, in MB."""
    with _PeakMemory() as memory:
        fn()  # warm-up: circuit plans, allocator
        start, repeats = time.perf_counter(), 0
        while repeats < min_repeats or time.perf_counter() - start < min_seconds:
            fn()
            repeats += 1
    return (time.perf_counter() - start) / repeats, memory.growth


# ---------------------------------------------------------------------------------------------------
# One measurement (runs inside a subprocess)


def _circuit_inputs(ansatz: str, batch: int, layers: int):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 12, generator=g) * 2 - 1) * torch.pi
    w = torch.rand(layers, ANSATZ_ANGLES[ansatz], generator=g) * 2 * torch.pi
    return x, w


def _hqdm_circuit_fn(ansatz: str, batch: int, layers: int, backward: bool) -> Callable[[], None]:
    from hqdm.quantum import expvals

    x, w = _circuit_inputs(ansatz, batch, layers)
    x.requires_grad_(backward)
    w.requires_grad_(backward)

    def run() -> None:
        if backward:
            expvals(ansatz, x, w).sum().backward()
        else:
            with torch.no_grad():
                expvals(ansatz, x, w)

    return run


def _pennylane_circuit_fn(ansatz: str, batch: int, layers: int, backward: bool) -> Callable[[], None]:
    import pennylane as qml

    from hqdm.quantum import to_pennylane

    x, w = _circuit_inputs(ansatz, batch, layers)
    x, w = x.double().requires_grad_(backward), w.double().requires_grad_(backward)
    apply = to_pennylane(ansatz, layers)
    device = qml.device("default.qubit", wires=12)

    @qml.qnode(device, interface="torch", diff_method="backprop")
    def circuit(xx, ww):
        apply(xx, ww)
        return [qml.expval(qml.PauliZ(i)) for i in range(12)]

    def run() -> None:
        if backward:
            torch.stack(circuit(x, w)).sum().backward()
        else:
            with torch.no_grad():
                circuit(x, w)

    return run


def measure_circuits(
    engine: str, ansatz: str, batch: int, layers: int, backward: bool, seconds: float
) -> dict:
    make = _hqdm_circuit_fn if engine == "hqdm" else _pennylane_circuit_fn
    seconds_per_call, peak = _time(make(ansatz, batch, layers, backward), seconds, 2)
    return {"seconds": seconds_per_call, "circuits_per_s": batch / seconds_per_call, "peak_mb": peak}


def measure_train_step(model_name: str, batch: int, seconds: float) -> dict:
    from hqdm.models import build_model, count_parameters

    torch.manual_seed(0)
    model = build_model(model_name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    x = torch.randn(batch, 1, 28, 28)
    t = torch.randint(0, 1000, (batch,))
    eps = torch.randn_like(x)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = (model(x, t) - eps).square().mean()
        loss.backward()
        optimizer.step()

    seconds_per_step, peak = _time(step, seconds, 2)
    classical, quantum = count_parameters(model)
    return {
        "seconds": seconds_per_step,
        "peak_mb": peak,
        "params": classical + quantum,
        "quantum_params": quantum,
    }


def measure_sampling(model_name: str, batch: int, steps: int) -> dict:
    """DDIM sampling images/s of a freshly initialised model (the cost does not depend on training)."""
    from hqdm.diffusion import DDIMSampler, make_schedule
    from hqdm.models import build_model

    torch.manual_seed(0)
    model = build_model(model_name)
    sampler = DDIMSampler(make_schedule("cosine"), steps=steps)
    generator = torch.Generator().manual_seed(0)
    seconds, peak = _time(lambda: sampler.sample(model, (batch, 1, 28, 28), generator=generator), 0.0, 1)
    return {"seconds": seconds, "images_per_s": batch / seconds, "peak_mb": peak}


#: glibc raises its mmap threshold after large frees and then keeps freed blocks in the heap, so the resident
#: set grows with the number of large temporaries; a fixed threshold returns them and shows live memory only
#: (it costs speed, so it is used for the memory-vs-depth table alone).
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _subprocess(kind: str, extra_env: dict[str, str] | None = None, **kwargs) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    code = f"import json, hqdm.bench as b; print(json.dumps(b.{kind}(**{kwargs!r})))"
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}
    env.update(extra_env or {})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed ({kind} {kwargs}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------
# Reports


@dataclass
class QuantumRow:
    ansatz: str
    batch: int
    mode: str
    hqdm: dict
    pennylane: dict
    pennylane_batch: int

    def line(self) -> str:
        ratio = self.hqdm["circuits_per_s"] / self.pennylane["circuits_per_s"]
        scaled = " (scaled)" if self.pennylane_batch != self.batch else ""
        return (
            f"| {self.ansatz} | {self.batch} | {self.mode} | {self.hqdm['circuits_per_s']:,.0f} | "
            f"{self.pennylane['circuits_per_s']:,.0f} @ {self.pennylane_batch}{scaled} | {ratio:,.1f}x | "
            f"{self.hqdm['peak_mb']:,.0f} | {self.pennylane['peak_mb']:,.0f} @ {self.pennylane_batch} |"
        )


def machine_line() -> str:
    """What the numbers depend on, including how busy the machine was (1-minute load average)."""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{load}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )


def quantum_benchmark(
    batches: tuple[int, ...] = (128, 896, 6272),
    ansatzes: tuple[str, ...] = ("hqconv", "fqconv"),
    layers: int = 3,
    pennylane_batch: int = 128,
    seconds: float = 3.0,
    echo: Callable[[str], None] = print,
) -> list[QuantumRow]:
    """hqdm vs PennyLane default.qubit (broadcasting, backprop), circuits/s forward and forward+backward.

    PennyLane is measured once per ansatz and mode at ``min(batch, pennylane_batch)`` and its rate is
    used for larger batches (linear scaling of its time; said so in the table).
    """
    import pennylane as qml

    echo(f"# quantum layer benchmark ({machine_line()}, PennyLane {qml.__version__})")
    echo(
        "| ansatz | batch | mode | hqdm circuits/s | PennyLane circuits/s | ratio | hqdm peak MB "
        "| PennyLane peak MB |"
    )
    echo("|---|---:|---|---:|---:|---:|---:|---:|")
    rows = []
    for ansatz in ansatzes:
        for backward in (False, True):
            mode = "forward+backward" if backward else "forward"
            peer_batch = min(pennylane_batch, min(batches))
            peer = _subprocess(
                "measure_circuits",
                engine="pennylane",
                ansatz=ansatz,
                batch=peer_batch,
                layers=layers,
                backward=backward,
                seconds=seconds,
            )
            for batch in batches:
                ours = _subprocess(
                    "measure_circuits",
                    engine="hqdm",
                    ansatz=ansatz,
                    batch=batch,
                    layers=layers,
                    backward=backward,
                    seconds=seconds,
                )
                row = QuantumRow(ansatz, batch, mode, ours, peer, peer_batch)
                rows.append(row)
                echo(row.line())
    return rows


def depth_memory_benchmark(
    batch: int = 6272,
    depths: tuple[int, ...] = (1, 3, 6, 12),
    ansatz: str = "hqconv",
    seconds: float = 1.0,
    echo: Callable[[str], None] = print,
) -> dict[int, dict]:
    """Peak live memory of hqdm forward+backward against circuit depth (it should stay flat)."""
    echo(
        f"# peak memory vs depth, {ansatz}, batch {batch}, forward+backward, with "
        f"{' '.join(f'{k}={v}' for k, v in LIVE_MEMORY_ENV.items())} ({machine_line()})"
    )
    echo("| layers | circuits/s | peak MB |")
    echo("|---:|---:|---:|")
    results = {}
    for layers in depths:
        result = _subprocess(
            "measure_circuits",
            extra_env=LIVE_MEMORY_ENV,
            engine="hqdm",
            ansatz=ansatz,
            batch=batch,
            layers=layers,
            backward=True,
            seconds=seconds,
        )
        results[layers] = result
        echo(f"| {layers} | {result['circuits_per_s']:,.0f} | {result['peak_mb']:,.0f} |")
    return results


def train_step_benchmark(
    models: tuple[str, ...] | None = None,
    batch: int = 128,
    seconds: float = 10.0,
    sample_steps: int = 0,
    sample_batch: int = 32,
    echo: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Forward + backward + Adam step of every registered model, as a ratio to the classical U-Net.

    With ``sample_steps`` > 0 also DDIM sampling images/s at that many steps (batch ``sample_batch``).
    """
    from hqdm.models import list_models

    names = list(models or list_models())
    if "unet" in names:
        names.remove("unet")
    names.insert(0, "unet")
    echo(f"# training step benchmark, batch {batch} ({machine_line()})")
    sampling = f" DDIM-{sample_steps} images/s (batch {sample_batch}) |" if sample_steps else ""
    echo(f"| model | params (quantum) | seconds/step | ratio to unet | train images/s | peak MB |{sampling}")
    echo("|---|---:|---:|---:|---:|---:|" + ("---:|" if sample_steps else ""))
    results: dict[str, dict] = {}
    for name in names:
        result = _subprocess("measure_train_step", model_name=name, batch=batch, seconds=seconds)
        if sample_steps:
            result["sampling"] = _subprocess(
                "measure_sampling", model_name=name, batch=sample_batch, steps=sample_steps
            )
        results[name] = result
        ratio = result["seconds"] / results["unet"]["seconds"]
        extra = f" {result['sampling']['images_per_s']:.2f} |" if sample_steps else ""
        echo(
            f"| {name} | {result['params']:,} ({result['quantum_params']:,}) | {result['seconds']:.2f} | "
            f"{ratio:.2f}x | {batch / result['seconds']:.1f} | {result['peak_mb']:,.0f} |{extra}"
        )
    return results
