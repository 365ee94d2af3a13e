"""Noisy simulation by stochastic trajectories (quantum jumps) on state vectors, for circuits too large
for a density matrix.

After each gate, each of its wires independently (with the generator):

* depolarising p: stays as is with probability 1 - p, else gets X, Y or Z (p/3 each);
* amplitude damping gamma: decays (``K1 = [[0, sqrt(gamma)], [0, 0]]``) with probability
  ``gamma * P(wire = 1)``, else evolves by ``K0 = [[1, 0], [0, sqrt(1 - gamma)]]``; renormalised either way.

The mean of ``|psi|^2`` over trajectories is an unbiased estimate of the density matrix's diagonal
(:mod:`hqdm.quantum.density`), with a statistical error that falls as 1/sqrt(trajectories).
"""

from __future__ import annotations

import torch

from hqdm.quantum.circuits import Circuit, Gate
from hqdm.quantum.local_ops import apply, pauli_matrices, split
from hqdm.quantum.noise_model import NoiseModel
from hqdm.quantum.statevector import final_states


def _uniform(rows: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(rows,) uniforms drawn on the generator's device (see hqdm.diffusion.noise), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(rows, generator=generator, device=where, dtype=torch.float64).to(device)


def _depolarize(state: torch.Tensor, wire: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    u = _uniform(state.shape[0], generator, state.device)
    hit = (u < p).nonzero().flatten()
    if hit.numel() == 0:
        return state
    # u uniform below p: which third of [0, p) it fell in picks X, Y or Z
    pauli = 1 + (u[hit] * 3 / p).long().clamp(max=2)
    flipped = apply(state[hit], pauli_matrices(state.dtype).to(state.device)[pauli], wire)
    return state.index_copy(0, hit, flipped)


def _damp(state: torch.Tensor, wire: int, gamma: float, generator: torch.Generator | None) -> torch.Tensor:
    excited = split(state, (wire,))[:, :, 1].abs().square().sum((1, 2)).to(torch.float64)  # P(wire = 1)
    decay = gamma * excited
    jumped = _uniform(state.shape[0], generator, state.device) < decay
    keep = 1 / (1 - decay).clamp(min=1e-300).sqrt()
    jump = gamma**0.5 / decay.clamp(min=1e-300).sqrt()
    zero = torch.zeros_like(decay)
    # per row: K1 / sqrt(p_jump) if it jumped, else K0 / sqrt(1 - p_jump)
    entries = [
        [torch.where(jumped, zero, keep), torch.where(jumped, jump, zero)],
        [zero, torch.where(jumped, zero, keep * (1 - gamma) ** 0.5)],
    ]
    matrix = torch.stack([torch.stack(row, -1) for row in entries], -2).to(state.dtype)
    return apply(state, matrix, wire)


def trajectory_probabilities(
    circuit: Circuit,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    noise: NoiseModel,
    dtype: torch.dtype,
    *,
    trajectories: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(rows, 2**n_wires): for each circuit the mean basis-state distribution of ``trajectories`` runs."""
    rows = inputs.shape[0]

    def after_gate(state: torch.Tensor, gate: Gate) -> torch.Tensor:
        for wire in gate.wires:
            if noise.depolarizing > 0:
                state = _depolarize(state, wire, noise.depolarizing, generator)
            if noise.amplitude_damping > 0:
                state = _damp(state, wire, noise.amplitude_damping, generator)
        return state

    # trajectory t of circuit r is row r * trajectories + t
    many = final_states(
        circuit,
        inputs.repeat_interleave(trajectories, 0),
        weights.repeat_interleave(trajectories, 0),
        dtype,
        after_gate,
    )
    probs = many.real.square() + many.imag.square()
    return probs.reshape(rows, trajectories, -1).mean(1)
