"""Benchmarks of the quantum engine against PennyLane and TorchQuantum: circuits/s and peak memory.

Every figure is measured in this run, each measurement in a fresh subprocess (:mod:`hqdm.bench.measure`).
Ratios compare numbers measured in the same run. Run them on an otherwise idle machine with
OMP_WAIT_POLICY=passive.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hqdm.bench import measure
from hqdm.bench.results import Table
from hqdm.quantum import ANGLES_PER_LAYER, build_circuit, expvals, to_pennylane

if TYPE_CHECKING:
    from types import ModuleType


# ---------------------------------------------------------------------------------------------------
# One measurement (runs inside a subprocess)


def _circuit_inputs(ansatz: str, batch: int, layers: int):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 12, generator=g) * 2 - 1) * torch.pi
    w = torch.rand(layers, ANGLES_PER_LAYER[ansatz], generator=g) * 2 * torch.pi
    return x, w


def _hqdm_circuit_fn(ansatz: str, batch: int, layers: int, backward: bool) -> Callable[[], None]:
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
# its own folder, .peers/torchquantum). The code that loads and drives it is not part of the installed
# package either: it lives in the checkout's benchmarks/peers/torchquantum_peer.py.

TORCHQUANTUM_DIR = ".peers/torchquantum"
TORCHQUANTUM_INSTALL = "scripts/install_torchquantum_peer.sh"
#: benchmarks/peers of the source checkout this hqdm is imported from (src/hqdm/bench/quantum.py -> the
#: repository).
PEERS_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "peers"
_PEER_MODULE = "hqdm_torchquantum_peer"


class PeerUnavailable(RuntimeError):
    """A benchmark peer cannot be loaded; the message says why and how to install it, in one line."""


def torchquantum_peer() -> ModuleType:
    """``benchmarks/peers/torchquantum_peer.py`` (``load_torchquantum``, ``to_torchquantum``), loaded once.

    Raises :class:`PeerUnavailable` when hqdm does not run from a source checkout (an installed hqdm has no
    benchmarks folder).
    """
    loaded = sys.modules.get(_PEER_MODULE)
    if loaded is not None:
        return loaded
    path = PEERS_DIR / "torchquantum_peer.py"
    if not path.is_file():
        raise PeerUnavailable(
            f"the TorchQuantum peer code ({path}) is not installed with hqdm: run hqdm from a source checkout"
        )
    spec = importlib.util.spec_from_file_location(_PEER_MODULE, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PEER_MODULE] = module  # before executing it, as an import would
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PEER_MODULE]
        raise
    return module


def torchquantum_info(peer_dir: str | None = TORCHQUANTUM_DIR) -> dict:
    """``{"version": ...}`` of the TorchQuantum peer, or ``{"unavailable": one-line reason}``."""
    try:
        return {"version": torchquantum_peer().load_torchquantum(peer_dir).__version__}
    except PeerUnavailable as error:
        return {"unavailable": str(error)}


def _torchquantum_circuit_fn(
    ansatz: str, batch: int, layers: int, backward: bool, peer_dir: str | None = TORCHQUANTUM_DIR
) -> Callable[[], None]:

    peer = torchquantum_peer()
    run = peer.to_torchquantum(peer.load_torchquantum(peer_dir), build_circuit(ansatz, layers))
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
    seconds_per_call, peak = measure.time_call(fn, seconds, 2)
    return {"seconds": seconds_per_call, "circuits_per_s": batch / seconds_per_call, "peak_mb": peak}


#: glibc raises its mmap threshold after large frees and then keeps freed blocks in the heap, so the resident
#: set grows with the number of large temporaries; a fixed threshold returns them and shows live memory only
#: (it costs speed, so it is used for the memory-vs-depth table alone).
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


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
    tq = measure.run_in_subprocess("quantum.torchquantum_info", peer_dir=tq_dir) if tq_dir else {}
    with_tq = "version" in tq
    info = {
        "machine": measure.machine_line(),
        "pennylane": qml.__version__,
        "torchquantum": tq,
        "layers": layers,
    }
    table = Table("quantum", info)
    for line in quantum_header(info):
        echo(line)
    for ansatz in ansatzes:
        for backward in (False, True):
            mode = "forward+backward" if backward else "forward"
            peer_batch = min(pennylane_batch, min(batches))
            peer = measure.run_in_subprocess(
                "quantum.measure_circuits",
                engine="pennylane",
                ansatz=ansatz,
                batch=peer_batch,
                layers=layers,
                backward=backward,
                seconds=seconds,
            )
            tq_results: dict[int, dict] = {}
            for batch in batches:
                ours = measure.run_in_subprocess(
                    "quantum.measure_circuits",
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
                        tq_results[row.torchquantum_batch] = measure.run_in_subprocess(
                            "quantum.measure_circuits",
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
        "depth", {"machine": measure.machine_line(), "batch": batch, "ansatz": ansatz, "env": LIVE_MEMORY_ENV}
    )
    for line in format_depth(table.info, []):
        echo(line)
    for layers in depths:
        result = measure.run_in_subprocess(
            "quantum.measure_circuits",
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
