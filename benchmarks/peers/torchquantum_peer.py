"""TorchQuantum as a benchmark peer of ``hqdm bench quantum``: loading its simulator, and hqdm circuits on it.

TorchQuantum is never a dependency of hqdm. ``scripts/install_torchquantum_peer.sh`` puts it in its own
folder (.peers/torchquantum), and this module, which is not installed with hqdm, is what the harness
(:mod:`hqdm.bench.quantum`) loads from the checkout to use it.
``python benchmarks/peers/torchquantum_peer.py DIR`` loads the simulator from DIR and prints its version
(the install script's last check).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from hqdm.bench.quantum import TORCHQUANTUM_DIR, TORCHQUANTUM_INSTALL, PeerUnavailable

if TYPE_CHECKING:
    from hqdm.quantum import Circuit

__all__ = ["PLACEHOLDERS", "PLACEHOLDER_DOC", "load_torchquantum", "to_torchquantum"]

#: The subpackages that make up TorchQuantum's state-vector simulator, in the order its ``__init__`` imports
#: them. The rest of its ``__init__`` (datasets, pulse solvers, Qiskit plugins) needs torchvision and more.
_SIMULATOR = ("macro", "device", "module", "operator", "measurement", "functional", "util")

#: Imports of that chain used only by TorchQuantum's IBM-hardware and noise-model helpers, with no genuine
#: package on this stack (see the install script): while the simulator loads, a placeholder stands in for
#: each one that cannot be imported for real, and it is removed from ``sys.modules`` afterwards.
PLACEHOLDERS = {
    "qiskit_ibm_runtime": "QiskitRuntimeService",
    "qiskit.providers.aer.noise.device.parameters": "gate_error_values",
}
#: The docstring of every placeholder module, so a leftover one can be recognised.
PLACEHOLDER_DOC = "placeholder set by benchmarks/peers/torchquantum_peer.py"


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
    for name, attribute in PLACEHOLDERS.items():
        if _importable(name):
            continue
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in sys.modules and not _importable(prefix):
                sys.modules[prefix] = types.ModuleType(prefix, PLACEHOLDER_DOC)
                added.append(prefix)
        setattr(sys.modules[name], attribute, _placeholder(name, attribute))
    return added


def _load_simulator(spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
    """The ``torchquantum`` package holding its simulator subpackages' names, as its ``__init__`` would."""
    package = importlib.util.module_from_spec(spec)  # not executed: its __init__ imports everything
    sys.modules["torchquantum"] = package
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchQuantum's and qiskit 0.46's own
        added = _add_placeholders()
        try:
            for name in _SIMULATOR:
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
    :class:`~hqdm.bench.quantum.PeerUnavailable` when TorchQuantum is missing or its simulator cannot be
    loaded.
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
        return _load_simulator(spec)
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


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else TORCHQUANTUM_DIR
    print(f"TorchQuantum {load_torchquantum(target).__version__} simulator loads from {target}")
