"""Benchmarks of the quantum engine against PennyLane and TorchQuantum (the classical compute: bench_compute).

Every figure is measured in this run, each measurement in a fresh subprocess so that its peak memory
(resident set growth over the process's state just before the timed work) is its own. Ratios compare
numbers measured in the same run. Run them on an otherwise idle machine with OMP_WAIT_POLICY=passive.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from hqdm.bench_results import Table
from hqdm.quantum.circuits import ansatzes

if TYPE_CHECKING:
    from hqdm.quantum import Circuit

ANSATZ_ANGLES = {name: a.angles_per_layer for name, a in ansatzes(wires=12).items()}


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


def _time(
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


# ---------------------------------------------------------------------------------------------------
# TorchQuantum peer: optional, never a dependency of hqdm (scripts/install_torchquantum_peer.sh puts it in
# its own folder, .peers/torchquantum)

TORCHQUANTUM_DIR = ".peers/torchquantum"
TORCHQUANTUM_INSTALL = "scripts/install_torchquantum_peer.sh"

#: The subpackages that make up TorchQuantum's state-vector simulator, in the order its ``__init__`` imports
#: them. The rest of its ``__init__`` (datasets, pulse solvers, Qiskit plugins) needs torchvision and more.
_TQ_SIMULATOR = ("macro", "device", "module", "operator", "measurement", "functional", "util")

#: Imports of that chain used only by TorchQuantum's IBM-hardware and noise-model helpers, with no genuine
#: package on this stack (see the install script): while the simulator loads, a placeholder stands in for
#: each one that cannot be imported for real, and it is removed from ``sys.modules`` afterwards.
_TQ_PLACEHOLDERS = {
    "qiskit_ibm_runtime": "QiskitRuntimeService",
    "qiskit.providers.aer.noise.device.parameters": "gate_error_values",
}


class PeerUnavailable(RuntimeError):
    """A benchmark peer cannot be loaded; the message says why and how to install it, in one line."""


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


def _placeholder(module: str, attribute: str) -> Callable[..., None]:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError(f"{module} is not installed (placeholder for TorchQuantum's simulator)")

    unavailable.__name__ = attribute
    return unavailable


def _add_placeholders() -> list[str]:
    added = []
    for name, attribute in _TQ_PLACEHOLDERS.items():
        if _importable(name):
            continue
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in sys.modules and not _importable(prefix):
                sys.modules[prefix] = types.ModuleType(prefix, "placeholder set by hqdm.bench")
                added.append(prefix)
        setattr(sys.modules[name], attribute, _placeholder(name, attribute))
    return added


def _load_torchquantum_simulator(spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
    """The ``torchquantum`` package holding its simulator subpackages' names, as its ``__init__`` would."""
    package = importlib.util.module_from_spec(spec)  # not executed: its __init__ imports everything
    sys.modules["torchquantum"] = package
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchQuantum's and qiskit 0.46's own
        added = _add_placeholders()
        try:
            for name in _TQ_SIMULATOR:
                module = importlib.import_module(f"torchquantum.{name}")
                exported = getattr(module, "__all__", None) or [n for n in vars(module) if n[0] != "_"]
                for attribute in exported:
                    setattr(package, attribute, getattr(module, attribute))
        finally:
            for name in added:
                sys.modules.pop(name, None)
    try:
        package.__version__ = importlib.metadata.version("torchquantum")
    except importlib.metadata.PackageNotFoundError:
        package.__version__ = importlib.import_module("torchquantum.__version__").version
    return package


def load_torchquantum(peer_dir: str | os.PathLike | None = TORCHQUANTUM_DIR) -> types.ModuleType:
    """TorchQuantum's simulator (``QuantumDevice``, ``functional`` gates, ``expval``, ``PauliZ``) as a module.

    ``peer_dir`` (the install script's ``pip --target`` folder), if it exists, is appended to ``sys.path``, so
    it never shadows installed packages; a torchquantum importable without it is used as well. Raises
    :class:`PeerUnavailable` when TorchQuantum is missing or its simulator cannot be loaded.
    """
    loaded = sys.modules.get("torchquantum")
    if loaded is not None and hasattr(loaded, "QuantumDevice"):
        return loaded
    where = "on sys.path"
    if peer_dir is not None:
        where = f"in {os.fspath(peer_dir)} or on sys.path"
        path = os.path.abspath(peer_dir)
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
    try:
        spec = importlib.util.find_spec("torchquantum")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.submodule_search_locations is None:
        raise PeerUnavailable(f"TorchQuantum is not installed {where}: run {TORCHQUANTUM_INSTALL} to add it")
    try:
        return _load_torchquantum_simulator(spec)
    except Exception as error:
        for name in [n for n in sys.modules if n == "torchquantum" or n.startswith("torchquantum.")]:
            del sys.modules[name]
        reason = str(error).splitlines()[0] if str(error) else ""
        raise PeerUnavailable(
            f"TorchQuantum at {next(iter(spec.submodule_search_locations))} does not load "
            f"({type(error).__name__}: {reason}): run {TORCHQUANTUM_INSTALL} to reinstall it"
        ) from error


def to_torchquantum(
    tq: types.ModuleType, circuit: Circuit
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function ``run(inputs, weights) -> <Z_i>`` replaying an hqdm circuit's gate list on TorchQuantum.

    TorchQuantum's own batching: one ``QuantumDevice`` with ``bsz`` = the number of input rows, encoding gates
    given one angle per sample (one matrix per sample), trainable gates one shared angle from ``weights``
    (one matrix, broadcast over the batch); readout ``tq.expval`` of ``PauliZ`` on every wire, (B, n_wires).
    """
    tqf = tq.functional
    gates = {"RX": tqf.rx, "RY": tqf.ry, "RZ": tqf.rz, "CRX": tqf.crx, "CRZ": tqf.crz, "CNOT": tqf.cnot}
    wires = list(range(circuit.n_wires))
    observables = [tq.PauliZ() for _ in wires]

    def run(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        device = tq.QuantumDevice(n_wires=circuit.n_wires, bsz=inputs.shape[0], device=inputs.device)
        for gate in circuit.encoding_gates:
            gates[gate.name](device, wires=gate.target, params=inputs[:, gate.input])
        flat = weights.reshape(-1)
        for gate in circuit.gates:
            params = None if gate.weight is None else flat[gate.weight]
            gates[gate.name](device, wires=list(gate.wires), params=params)
        return tq.expval(device, wires, observables)

    return run


def torchquantum_info(peer_dir: str | None = TORCHQUANTUM_DIR) -> dict:
    """``{"version": ...}`` of the TorchQuantum peer, or ``{"unavailable": one-line reason}``."""
    try:
        return {"version": load_torchquantum(peer_dir).__version__}
    except PeerUnavailable as error:
        return {"unavailable": str(error)}


def _torchquantum_circuit_fn(
    ansatz: str, batch: int, layers: int, backward: bool, peer_dir: str | None = TORCHQUANTUM_DIR
) -> Callable[[], None]:
    from hqdm.quantum import build_circuit

    run = to_torchquantum(load_torchquantum(peer_dir), build_circuit(ansatz, layers))
    x, w = _circuit_inputs(ansatz, batch, layers)
    x.requires_grad_(backward)
    w.requires_grad_(backward)

    def call() -> None:
        if backward:
            run(x, w).sum().backward()
        else:
            with torch.no_grad():
                run(x, w)

    return call


def measure_circuits(
    engine: str,
    ansatz: str,
    batch: int,
    layers: int,
    backward: bool,
    seconds: float,
    peer_dir: str | None = TORCHQUANTUM_DIR,
) -> dict:
    if engine == "torchquantum":
        fn = _torchquantum_circuit_fn(ansatz, batch, layers, backward, peer_dir)
    else:
        make = _hqdm_circuit_fn if engine == "hqdm" else _pennylane_circuit_fn
        fn = make(ansatz, batch, layers, backward)
    seconds_per_call, peak = _time(fn, seconds, 2)
    return {"seconds": seconds_per_call, "circuits_per_s": batch / seconds_per_call, "peak_mb": peak}


#: glibc raises its mmap threshold after large frees and then keeps freed blocks in the heap, so the resident
#: set grows with the number of large temporaries; a fixed threshold returns them and shows live memory only
#: (it costs speed, so it is used for the memory-vs-depth table alone).
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _subprocess(kind: str, extra_env: dict[str, str] | None = None, **kwargs) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    module, _, function = kind.rpartition(".")  # "measure_x" (this module) or "bench_compute.measure_x"
    code = f"import json, hqdm.{module or 'bench'} as b; print(json.dumps(b.{function}(**{kwargs!r})))"
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
    torchquantum: dict | None = None
    torchquantum_batch: int = 0

    def line(self) -> str:
        def peer(result: dict, batch: int) -> str:
            ratio = self.hqdm["circuits_per_s"] / result["circuits_per_s"]
            scaled = " (scaled)" if batch != self.batch else ""
            return f"{result['circuits_per_s']:,.0f} @ {batch}{scaled} | {ratio:,.1f}x"

        rates = [peer(self.pennylane, self.pennylane_batch)]
        peaks = [f"{self.pennylane['peak_mb']:,.0f} @ {self.pennylane_batch}"]
        if self.torchquantum is not None:
            rates.append(peer(self.torchquantum, self.torchquantum_batch))
            peaks.append(f"{self.torchquantum['peak_mb']:,.0f} @ {self.torchquantum_batch}")
        return (
            f"| {self.ansatz} | {self.batch} | {self.mode} | {self.hqdm['circuits_per_s']:,.0f} | "
            f"{' | '.join(rates)} | {self.hqdm['peak_mb']:,.0f} | {' | '.join(peaks)} |"
        )


def machine_line() -> str:
    """What the numbers depend on, including how busy the machine was (1-minute load average)."""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{load}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )


def quantum_header(info: dict) -> list[str]:
    """The comment lines and column header of the quantum table (``info`` from :func:`quantum_benchmark`)."""
    tq = info["torchquantum"]
    with_tq = "version" in tq
    peers = f"PennyLane {info['pennylane']}" + (f", TorchQuantum {tq['version']}" if with_tq else "")
    lines = [f"# quantum layer benchmark ({info['machine']}, {peers})"]
    if "unavailable" in tq:
        lines.append(f"# {tq['unavailable']} (its columns are left out)")
    rates = ["PennyLane circuits/s", "ratio"] + (["TorchQuantum circuits/s", "ratio"] if with_tq else [])
    peaks = ["PennyLane peak MB"] + (["TorchQuantum peak MB"] if with_tq else [])
    columns = ["ansatz", "batch", "mode", "hqdm circuits/s", *rates, "hqdm peak MB", *peaks]
    lines.append(f"| {' | '.join(columns)} |")
    lines.append("|" + "|".join("---" if name in ("ansatz", "mode") else "---:" for name in columns) + "|")
    return lines


def format_quantum(info: dict, rows: list[dict]) -> list[str]:
    return quantum_header(info) + [QuantumRow(**row).line() for row in rows]


def quantum_benchmark(
    batches: tuple[int, ...] = (128, 896, 6272),
    ansatzes: tuple[str, ...] = ("hqconv", "fqconv"),
    layers: int = 3,
    pennylane_batch: int = 128,
    torchquantum_dir: str | None = TORCHQUANTUM_DIR,
    torchquantum_batch: int = 896,
    seconds: float = 3.0,
    echo: Callable[[str], None] = print,
) -> Table:
    """hqdm vs PennyLane default.qubit (broadcasting, backprop) and TorchQuantum, circuits/s forward and
    forward+backward.

    PennyLane is measured once per ansatz and mode at ``min(batch, pennylane_batch)`` and its rate is
    used for larger batches (linear scaling of its time; said so in the table). TorchQuantum, when it can be
    loaded from ``torchquantum_dir`` (``None`` or ``""`` skips it) or is installed, is measured at every
    batch up to ``torchquantum_batch`` (its autograd keeps a state per gate) and scaled the same way above.
    """
    import pennylane as qml

    tq_dir = os.path.abspath(torchquantum_dir) if torchquantum_dir else None
    tq = _subprocess("torchquantum_info", peer_dir=tq_dir) if tq_dir else {}
    with_tq = "version" in tq
    info = {"machine": machine_line(), "pennylane": qml.__version__, "torchquantum": tq, "layers": layers}
    table = Table("quantum", info)
    for line in quantum_header(info):
        echo(line)
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
            tq_results: dict[int, dict] = {}
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
                if with_tq:
                    row.torchquantum_batch = min(batch, torchquantum_batch)
                    if row.torchquantum_batch not in tq_results:
                        tq_results[row.torchquantum_batch] = _subprocess(
                            "measure_circuits",
                            engine="torchquantum",
                            ansatz=ansatz,
                            batch=row.torchquantum_batch,
                            layers=layers,
                            backward=backward,
                            seconds=seconds,
                            peer_dir=tq_dir,
                        )
                    row.torchquantum = tq_results[row.torchquantum_batch]
                table.rows.append(asdict(row))
                echo(row.line())
    return table


def format_depth(info: dict, rows: list[dict]) -> list[str]:
    env = " ".join(f"{k}={v}" for k, v in info["env"].items())
    lines = [
        f"# peak memory vs depth, {info['ansatz']}, batch {info['batch']}, forward+backward, with {env} "
        f"({info['machine']})",
        "| layers | circuits/s | peak MB |",
        "|---:|---:|---:|",
    ]
    return lines + [f"| {r['layers']} | {r['circuits_per_s']:,.0f} | {r['peak_mb']:,.0f} |" for r in rows]


def depth_memory_benchmark(
    batch: int = 6272,
    depths: tuple[int, ...] = (1, 3, 6, 12),
    ansatz: str = "hqconv",
    seconds: float = 1.0,
    echo: Callable[[str], None] = print,
) -> Table:
    """Peak live memory of hqdm forward+backward against circuit depth (it should stay flat)."""
    table = Table(
        "depth", {"machine": machine_line(), "batch": batch, "ansatz": ansatz, "env": LIVE_MEMORY_ENV}
    )
    for line in format_depth(table.info, []):
        echo(line)
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
        table.rows.append({"layers": layers, **result})
        echo(format_depth(table.info, table.rows)[-1])
    return table
