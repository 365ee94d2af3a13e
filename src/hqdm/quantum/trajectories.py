"""Noisy simulation by stochastic trajectories (quantum jumps) on state vectors, for circuits too large
for a density matrix.

After each gate, each of its wires independently, in every trajectory (with the generator):

* depolarising p: stays as is with probability 1 - p, else jumps by X, Y or Z (p/3 each);
* amplitude damping gamma: jumps by decaying (``K1 = [[0, sqrt(gamma)], [0, 0]]``) with probability
  ``gamma * P(wire = 1)``, else evolves by ``K0 = [[1, 0], [0, sqrt(1 - gamma)]]``; states are kept
  unnormalised with their squared norm tracked, which the probabilities are divided by at the end.

The mean of ``|psi|^2`` over trajectories is an unbiased estimate of the density matrix's diagonal
(:mod:`hqdm.quantum.density`), with a statistical error that falls as 1/sqrt(trajectories).

Until its first jump a trajectory is the same state as every other unjumped trajectory of its circuit
(no jump is deterministic, K0 included). So a row here stands for ``count`` identical trajectories: each
circuit starts as one row of ``count = trajectories``, and a trajectory that jumps leaves its row as a new
row of count 1 (a row of count 1 jumps in place). At realistic error rates most trajectories never jump,
and 32 trajectories cost a few state vectors instead of 32; the draws are those of 32 independent
trajectories all the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from hqdm.quantum.circuits import Circuit, Gate
from hqdm.quantum.local_ops import DIAGONAL_GATES, apply, gate_angles, gate_matrix, pauli_matrices, split
from hqdm.quantum.noise_model import NoiseModel

#: ``jumped(source_rows, uniforms)`` -> (states, squared norms) of the trajectories that jump
Jumped = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniforms drawn on the generator's device (see hqdm.diffusion.noise), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where, dtype=torch.float64).to(device)


class _Rows:
    """The distinct trajectory states of a batch of circuits: ``state`` (rows, 2**n) unnormalised,
    ``norm2`` (rows,) their squared norms, ``owner`` (rows,) the circuit of each, ``count`` (rows,) how
    many trajectories each stands for. States live in two buffers with room to grow, so a gate writes
    from one into the other and new rows are written after the last, without copying the others."""

    def __init__(
        self, circuits: int, n_wires: int, trajectories: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        self.trajectories = trajectories
        self.used = circuits
        self._buffers = [torch.zeros(2 * circuits, 1 << n_wires, dtype=dtype, device=device) for _ in "ab"]
        self._buffers[0][:circuits, 0] = 1
        self.norm2 = torch.ones(circuits, dtype=torch.float64, device=device)
        self.owner = torch.arange(circuits, device=device)
        self.count = torch.full_like(self.owner, trajectories)

    @property
    def state(self) -> torch.Tensor:
        return self._buffers[0][: self.used]

    def apply_gate(self, gate: Gate, inputs: torch.Tensor, weights: torch.Tensor) -> None:
        angles = gate_angles(gate, inputs, weights)
        state = self.state
        matrix = gate_matrix(gate, None if angles is None else angles[self.owner], self.used, state.dtype)
        out = self._buffers[1][: self.used]
        apply(state, matrix, gate.target, gate.control, out=out, diagonal=gate.name in DIAGONAL_GATES)
        self._buffers.reverse()

    def _append(self, states: torch.Tensor, norm2: torch.Tensor, owner: torch.Tensor) -> None:
        need = self.used + len(states)
        if need > len(self._buffers[0]):
            grown = [b.new_empty(max(need, 2 * len(b)), b.shape[1]) for b in self._buffers]
            grown[0][: self.used] = self.state
            self._buffers = grown
        self._buffers[0][self.used : need] = states
        self.used = need
        self.norm2 = torch.cat([self.norm2, norm2])
        self.owner = torch.cat([self.owner, owner])
        self.count = torch.cat([self.count, torch.ones_like(owner)])

    def jump(
        self,
        hazard: torch.Tensor,
        generator: torch.Generator | None,
        jumped: Jumped,
        no_jump: Callable[[], None] | None = None,
    ) -> None:
        """Each trajectory of row r jumps with probability ``hazard[r]`` into ``jumped(rows, uniforms)``
        (the uniform in [0, hazard) of each jump passed on: it picks the Pauli of a depolarising jump);
        ``no_jump()`` then evolves every row in place as the trajectories that did not jump."""
        draws = _uniform((self.used, self.trajectories), generator, self.state.device)
        slots = torch.arange(self.trajectories, device=self.state.device)
        hits = (draws < hazard[:, None]) & (slots < self.count[:, None])
        source = hits.nonzero()[:, 0]
        moved, moved_norm2 = jumped(source, draws[hits]) if source.numel() else (None, None)
        if no_jump is not None:
            no_jump()
        if moved is None:
            return
        alone = self.count[source] == 1  # a row of one trajectory jumps in place
        rows = source[alone]
        self.state[rows], self.norm2[rows] = moved[alone], moved_norm2[alone]
        self.count = self.count - hits.sum(1)
        self.count[rows] = 1
        shared = ~alone
        self._append(moved[shared], moved_norm2[shared], self.owner[source[shared]])

    def probabilities(self, circuits: int) -> torch.Tensor:
        """(circuits, 2**n): each circuit's mean distribution over its trajectories."""
        state = torch.view_as_real(self.state)
        probs = state.square().sum(-1)
        # rows every trajectory has left weigh nothing (their norm may have decayed to 0)
        weight = torch.where(self.count > 0, self.count / self.norm2, 0).to(probs.dtype)
        total = probs.new_zeros(circuits, probs.shape[1])
        return total.index_add_(0, self.owner, probs * weight[:, None]) / self.trajectories


def _depolarize(rows: _Rows, wire: int, p: float, generator: torch.Generator | None) -> None:
    paulis = pauli_matrices(rows.state.dtype).to(rows.state.device)

    def jumped(source: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # u uniform below p: which third of [0, p) it fell in picks X, Y or Z
        pauli = 1 + (u * 3 / p).long().clamp(max=2)
        return apply(rows.state[source], paulis[pauli], wire), rows.norm2[source]

    rows.jump(torch.full_like(rows.norm2, p), generator, jumped)


def _damp(rows: _Rows, wire: int, gamma: float, generator: torch.Generator | None) -> None:
    """A decay moves the |1> amplitudes to |0> (K1; squared norm ``P(1) * norm2``); K0 only shrinks the
    |1> half, one pass in place, and the norm is tracked instead of restored."""
    ones = split(rows.state, (wire,))[:, :, 1]
    excited = torch.view_as_real(ones).square().sum((1, 2, 3)).to(rows.norm2.dtype)  # P(1) * norm2

    def jumped(source: torch.Tensor, _: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decayed = split(rows.state[source], (wire,))
        decayed[:, :, 0], decayed[:, :, 1] = decayed[:, :, 1], 0
        return decayed.flatten(1), excited[source]

    def no_jump() -> None:
        ones.mul_((1 - gamma) ** 0.5)
        rows.norm2 -= gamma * excited

    rows.jump(gamma * excited / rows.norm2, generator, jumped, no_jump)


def expected_rows(circuit: Circuit, noise: NoiseModel, trajectories: int) -> float:
    """How many distinct states a circuit is expected to end with: its unjumped row plus one for each
    trajectory that jumps at least once, taking P(1) = 1/2 for the damping hazard. Chunks of circuits are
    sized by it, since at high error rates a circuit's rows multiply many times over (sycamore-2019 on the
    3-layer HQConv: about 24 rows a circuit)."""
    events = sum(len(gate.wires) for gate in circuit.executed_gates)
    hazard = noise.depolarizing + noise.amplitude_damping / 2
    return 1 + trajectories * -math.expm1(events * math.log1p(-min(hazard, 1.0)))


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
    circuits = inputs.shape[0]
    rows = _Rows(circuits, circuit.n_wires, trajectories, dtype, inputs.device)
    for gate in circuit.executed_gates:
        rows.apply_gate(gate, inputs, weights)
        for wire in gate.wires:
            if noise.depolarizing > 0:
                _depolarize(rows, wire, noise.depolarizing, generator)
            if noise.amplitude_damping > 0:
                _damp(rows, wire, noise.amplitude_damping, generator)
    return rows.probabilities(circuits)
