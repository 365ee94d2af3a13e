"""Noisy simulation by stochastic trajectories (quantum jumps) on state vectors, for circuits too large
for a density matrix.

After each gate, each of its wires independently (with the generator):

* depolarising p: stays as is with probability 1 - p, else gets X, Y or Z (p/3 each);
* amplitude damping gamma: decays (``K1 = [[0, sqrt(gamma)], [0, 0]]``) with probability
  ``gamma * P(wire = 1)``, else evolves by ``K0 = [[1, 0], [0, sqrt(1 - gamma)]]``; the state is kept
  unnormalised with its squared norm tracked, which the probabilities are divided by at the end.

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


def _damp(
    state: torch.Tensor, norm2: torch.Tensor, wire: int, gamma: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Amplitude damping on an unnormalised ``state`` (rows, 2**n) with squared norms ``norm2`` (rows,),
    both updated in place. Rows that decay get their |1> amplitudes moved to |0> (K1); the others are
    scaled by K0, which only shrinks the |1> half: one pass, and the norm is tracked instead of restored."""
    ones = split(state, (wire,))[:, :, 1]  # the amplitudes with the wire at |1>, a view
    excited = ones.abs().square().sum((1, 2)).to(norm2.dtype)  # P(wire = 1) * norm2
    decayed = (
        (_uniform(state.shape[0], generator, state.device) * norm2 < gamma * excited).nonzero().flatten()
    )
    moved = ones[decayed].clone()
    ones.mul_((1 - gamma) ** 0.5)
    norm2.sub_(gamma * excited)
    if decayed.numel():
        zeros = split(state, (wire,))[:, :, 0]
        zeros[decayed], ones[decayed] = moved, 0
        norm2[decayed] = excited[decayed]
    return state


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
    # trajectory t of circuit r is row r * trajectories + t; states stay unnormalised (see _damp)
    norm2 = torch.ones(rows * trajectories, dtype=torch.float64, device=inputs.device)

    def after_gate(state: torch.Tensor, gate: Gate) -> torch.Tensor:
        for wire in gate.wires:
            if noise.depolarizing > 0:
                state = _depolarize(state, wire, noise.depolarizing, generator)
            if noise.amplitude_damping > 0:
                state = _damp(state, norm2, wire, noise.amplitude_damping, generator)
        return state

    many = final_states(
        circuit,
        inputs.repeat_interleave(trajectories, 0),
        weights.repeat_interleave(trajectories, 0),
        dtype,
        after_gate,
    )
    probs = (many.real.square() + many.imag.square()) / norm2[:, None].to(many.real.dtype)
    return probs.reshape(rows, trajectories, -1).mean(1)
