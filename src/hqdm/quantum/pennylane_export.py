"""Export hqdm circuits to PennyLane, so trained weights run on any PennyLane device.

The export replays the same gate list the torch engine simulates (``hqdm.quantum.circuits``), so shots,
noise models, parameter-shift gradients and hardware backends all see the identical circuit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hqdm.quantum.circuits import ANGLES_PER_LAYER, Circuit, build_circuit


def _import_pennylane():
    try:
        import pennylane as qml
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the PennyLane export needs PennyLane: pip install 'hqdm[pennylane]' (or pip install pennylane)"
        ) from error
    return qml


def to_pennylane(
    ansatz: str | Circuit,
    n_layers: int | None = None,
    *,
    semantics: str = "paper",
    wires: list[Any] | None = None,
) -> Callable[[Any, Any], None]:
    """A function ``apply(inputs, weights)`` that queues the circuit's gates inside a PennyLane QNode.

    ``inputs`` is (..., n_wires) encoding angles (RX, or RY for circuits with ``encoding="RY"``; a leading
    batch dimension uses PennyLane broadcasting) and ``weights`` the (layers, angles_per_layer) array of
    :func:`hqdm.quantum.expvals` (for a Circuit: any shape holding its ``n_weights`` angles), in any
    interface PennyLane supports (numpy, torch, jax, autograd). ``wires`` renames the circuit's wires 0..n-1.
    Measurements are left to the caller, e.g. ``[qml.expval(qml.PauliZ(w)) for w in wires]``.
    """
    qml = _import_pennylane()
    if isinstance(ansatz, Circuit):
        circuit = ansatz
    else:
        if n_layers is None:
            raise ValueError("n_layers is required when the ansatz is given by name")
        circuit = build_circuit(ansatz, n_layers, semantics=semantics)
    names = list(range(circuit.n_wires)) if wires is None else list(wires)
    if len(names) != circuit.n_wires:
        raise ValueError(f"the circuit has {circuit.n_wires} wires, got {len(names)} wire labels")
    per_layer = None if isinstance(ansatz, Circuit) else ANGLES_PER_LAYER[ansatz]
    operations = {"RX": qml.RX, "RY": qml.RY, "RZ": qml.RZ, "CRX": qml.CRX, "CRZ": qml.CRZ}
    encode = operations[circuit.encoding]

    def apply(inputs: Any, weights: Any) -> None:
        if per_layer is not None and qml.math.shape(weights)[-1] != per_layer:
            raise ValueError(f"weights must have shape (layers, {per_layer}), got {qml.math.shape(weights)}")
        flat = qml.math.reshape(weights, (-1,))
        for w in range(circuit.n_wires):
            encode(inputs[..., w], wires=names[w])
        for gate in circuit.gates:
            gate_wires = [names[w] for w in gate.wires]
            if gate.name == "CNOT":
                qml.CNOT(wires=gate_wires)
            else:
                operations[gate.name](flat[gate.weight], wires=gate_wires)

    return apply
