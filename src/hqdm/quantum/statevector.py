"""A plain gate-by-gate state-vector simulator that keeps the whole output distribution.

The batched engine (:mod:`hqdm.quantum.engine`) returns ``<Z_i>`` only; sampling bitstrings needs every
basis-state probability, which this one gives. It applies the encoding rotations and then the circuit's
gates one at a time (:mod:`hqdm.quantum.local_ops`), optionally calling ``after_gate`` so that noise
trajectories (:mod:`hqdm.quantum.trajectories`) can act between gates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hqdm.quantum.circuits import Circuit, Gate
from hqdm.quantum.local_ops import DIAGONAL_GATES, apply, gate_matrix

#: ``after_gate(state, gate)`` returns the state after whatever happens once ``gate`` has acted
AfterGate = Callable[[torch.Tensor, Gate], torch.Tensor]


def all_gates(circuit: Circuit) -> tuple[Gate, ...]:
    """The encoding rotations, then the circuit's gates: everything a QPU would execute."""
    return (*circuit.encoding_gates, *circuit.gates)


def gate_angles(gate: Gate, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
    """The (rows,) angles of ``gate``: an input feature (encoding), a weight, or none (CNOT)."""
    if gate.input is not None:
        return inputs[:, gate.input]
    return None if gate.weight is None else weights[:, gate.weight]


def final_states(
    circuit: Circuit,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    dtype: torch.dtype,
    after_gate: AfterGate | None = None,
) -> torch.Tensor:
    """(rows, 2**n_wires) final states for inputs (rows, n_wires) and weights (rows, n_weights)."""
    rows, n = inputs.shape[0], circuit.n_wires
    state = torch.zeros(rows, 1 << n, dtype=dtype, device=inputs.device)
    state[:, 0] = 1
    for gate in all_gates(circuit):
        matrix = gate_matrix(gate, gate_angles(gate, inputs, weights), rows, dtype)
        state = apply(state, matrix, gate.target, gate.control, diagonal=gate.name in DIAGONAL_GATES)
        if after_gate is not None:
            state = after_gate(state, gate)
    return state


def probabilities(
    circuit: Circuit, inputs: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """(rows, 2**n_wires) probabilities of the basis states (wire 0 the most significant bit)."""
    state = final_states(circuit, inputs, weights, dtype)
    return state.real.square() + state.imag.square()
