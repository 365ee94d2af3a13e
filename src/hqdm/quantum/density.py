"""Exact noisy simulation: the density matrix of each circuit, gate by gate, with the noise channels.

Memory is ``4**n_wires`` complex numbers per circuit, so this is the method for small circuits (the
independent parts of FQConv, reference-code HQConv, BasicEntangler, small bottleneck circuits) and for
checking a few inputs of larger ones; :mod:`hqdm.quantum.trajectories` handles large circuits in bulk.
"""

from __future__ import annotations

import torch

from hqdm.quantum.circuits import Circuit
from hqdm.quantum.local_ops import (
    DIAGONAL_GATES,
    amplitude_damping_kraus,
    apply,
    apply_channel,
    depolarizing_kraus,
    gate_angles,
    gate_matrix,
    superoperator,
)
from hqdm.quantum.noise_model import NoiseModel


def noisy_probabilities(
    circuit: Circuit, inputs: torch.Tensor, weights: torch.Tensor, noise: NoiseModel, dtype: torch.dtype
) -> torch.Tensor:
    """(rows, 2**n_wires) basis-state probabilities of the noisy circuit (before readout error)."""
    rows, n = inputs.shape[0], circuit.n_wires
    # depolarising, then amplitude damping: one 4x4 map per wire after each gate
    channel = superoperator(amplitude_damping_kraus(noise.amplitude_damping, dtype)) @ superoperator(
        depolarizing_kraus(noise.depolarizing, dtype)
    )
    rho = torch.zeros(rows, 1 << (2 * n), dtype=dtype, device=inputs.device)
    rho[:, 0] = 1  # |0...0><0...0|, flat: row bits then column bits
    for gate in circuit.executed_gates:
        matrix = gate_matrix(gate, gate_angles(gate, inputs, weights), rows, dtype)
        control, diagonal = gate.control, gate.name in DIAGONAL_GATES
        # U rho U^H: U on the row bits, conj(U) on the column bits
        rho = apply(rho, matrix, gate.target, control, diagonal=diagonal)
        column_control = None if control is None else n + control
        rho = apply(rho, matrix.conj(), n + gate.target, column_control, diagonal=diagonal)
        for wire in gate.wires:
            rho = apply_channel(rho, channel, wire, n + wire)
    return rho.view(rows, 1 << n, 1 << n).diagonal(dim1=1, dim2=2).real.clamp(min=0)
