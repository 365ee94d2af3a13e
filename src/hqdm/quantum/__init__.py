"""Quantum circuits as data, a fast batched simulator, torch layers and a PennyLane export."""

from hqdm.quantum.circuit_layer import CircuitLayer
from hqdm.quantum.circuits import (
    ANGLES_PER_LAYER,
    ANSATZ_WIRES,
    ANSATZES,
    SEMANTICS,
    Circuit,
    Gate,
    build_circuit,
    chen_circuit,
    register_ansatz,
)
from hqdm.quantum.functional import expvals
from hqdm.quantum.layers import PatchCircuit, Quanvolution
from hqdm.quantum.pennylane_export import to_pennylane

__all__ = [
    "ANGLES_PER_LAYER",
    "ANSATZES",
    "ANSATZ_WIRES",
    "SEMANTICS",
    "Circuit",
    "CircuitLayer",
    "Gate",
    "PatchCircuit",
    "Quanvolution",
    "build_circuit",
    "chen_circuit",
    "expvals",
    "register_ansatz",
    "to_pennylane",
]
