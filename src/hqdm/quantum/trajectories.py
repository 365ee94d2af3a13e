"""Noisy simulation by stochastic trajectories (quantum jumps) on state vectors, for circuits too large
for a density matrix.

After each gate, each of its wires in turn, in every trajectory (with the generator):

* depolarising p: stays as is with probability 1 - p, else jumps by X, Y or Z (p/3 each);
* amplitude damping gamma: jumps by decaying (``K1 = [[0, sqrt(gamma)], [0, 0]]``) with probability
  ``gamma * P(wire = 1)``, else evolves by ``K0 = [[1, 0], [0, sqrt(1 - gamma)]]``. States are kept
  unnormalised; each is divided by its squared norm at the end.

The mean of ``|psi|^2`` over trajectories is an unbiased estimate of the density matrix's diagonal
(:mod:`hqdm.quantum.density`), with a statistical error that falls as 1/sqrt(trajectories).

Until its first jump a trajectory is the same state as every other unjumped trajectory of its circuit
(no jump is deterministic, K0 included). So a row here stands for ``count`` identical trajectories: each
circuit starts as one row of ``count = trajectories``, and a trajectory that jumps leaves its row as a new
row of count 1 (a row of count 1 jumps in place). At realistic error rates most trajectories never jump,
and 32 trajectories cost a few state vectors instead of 32; the draws are those of 32 independent
trajectories all the same.

A gate costs one pass over the states, noise included. A decay is drawn in two stages: a candidate with
probability gamma, whatever the state, accepted with probability P(wire = 1) (the uniform below gamma,
rescaled, decides), which is a decay with probability gamma * P(1) as above. So which trajectories may jump
at a gate is known before the gate is applied: every row is written once as ``K0 ... K0 G psi`` (the gate
with the no-decay evolution of its wires folded in), and only the few trajectories with a Pauli jump or
a decay candidate are then replayed event by event from ``G psi``, in the order above.
"""

from __future__ import annotations

import functools
import math

import torch

from hqdm.quantum.circuits import Circuit, Gate
from hqdm.quantum.local_ops import DIAGONAL_GATES, apply, gate_angles, gate_matrix, pauli_matrices, split
from hqdm.quantum.noise_model import NoiseModel


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniforms drawn on the generator's device (see hqdm.diffusion.noise), moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where, dtype=torch.float64).to(device)


@functools.cache
def _paulis(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return pauli_matrices(dtype).to(device)


class _Rows:
    """The distinct trajectory states of a batch of circuits: ``state`` (rows, 2**n) unnormalised,
    ``owner`` (rows,) the circuit of each, ``count`` (rows,) how many trajectories each stands for. States
    live in two buffers with room to grow, so a gate writes from one into the other and new rows are
    written after the last, without copying the others."""

    def __init__(
        self, circuits: int, n_wires: int, trajectories: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        self.trajectories = trajectories
        self.used = circuits
        self._buffers = [torch.zeros(2 * circuits, 1 << n_wires, dtype=dtype, device=device) for _ in "ab"]
        self._buffers[0][:circuits, 0] = 1
        self.owner = torch.arange(circuits, device=device)
        self.count = torch.full_like(self.owner, trajectories)

    @property
    def state(self) -> torch.Tensor:
        return self._buffers[0][: self.used]

    def apply_noisy_gate(
        self,
        gate: Gate,
        inputs: torch.Tensor,
        weights: torch.Tensor,
        noise: NoiseModel,
        generator: torch.Generator | None,
    ) -> None:
        """The gate, then on each of its wires depolarising and amplitude damping, in every trajectory."""
        angles = gate_angles(gate, inputs, weights)
        before = self.state
        matrix = gate_matrix(gate, None if angles is None else angles[self.owner], self.used, before.dtype)
        p, gamma = noise.depolarizing, noise.amplitude_damping
        # per wire and trajectory a uniform for a Pauli jump (below p) and one for a decay candidate
        # (below gamma; none drawn without damping)
        kinds = 2 if gamma > 0 else 1
        draws = _uniform((self.used, self.trajectories, len(gate.wires), kinds), generator, before.device)
        live = torch.arange(self.trajectories, device=before.device) < self.count[:, None]
        events = ((draws[..., 0] < p) | (draws[..., -1] < gamma)).any(-1) & live
        after = self._buffers[1][: self.used]
        keep = (1 - gamma) ** 0.5
        _apply_gate(before, matrix, gate, after, keep)
        self._buffers.reverse()
        row, slot = events.nonzero(as_tuple=True)
        if row.numel():
            # G psi: without damping the pass above wrote exactly that
            states = apply(before[row], matrix[row], gate.target, gate.control) if gamma > 0 else after[row]
            self._replay(gate, states, row, draws[row, slot], noise)

    def _replay(
        self, gate: Gate, states: torch.Tensor, row: torch.Tensor, draws: torch.Tensor, noise: NoiseModel
    ) -> None:
        """Take the trajectories with an event at this gate (states ``G psi`` of their rows ``row``, their
        draws (events, wires, kinds)) through the gate's noise one wire at a time; those that jump leave
        their rows."""
        p, gamma = noise.depolarizing, noise.amplitude_damping
        jumped = torch.zeros_like(row, dtype=torch.bool)
        for index, wire in enumerate(gate.wires):
            u_pauli, u_decay = draws[:, index, 0], draws[:, index, -1]
            flip = u_pauli < p
            jumped |= flip
            if flip.any():
                # u below p: which third of [0, p) it fell in picks X, Y or Z
                pauli = 1 + (u_pauli[flip] * 3 / p).long().clamp(max=2)
                states[flip] = apply(states[flip], _paulis(states.dtype, states.device)[pauli], wire)
            if gamma == 0:
                continue
            halves = split(states, (wire,))
            p0, p1 = torch.view_as_real(halves).square().sum((1, 3, 4)).unbind(1)  # unnormalised P(0), P(1)
            decay = u_decay * (p0 + p1) < gamma * p1  # the candidate below gamma, accepted with P(1)
            if decay.any():  # K1 moves the |1> amplitudes to |0> ...
                halves[decay, :, 0] = halves[decay, :, 1]
            # ... and leaves none in |1>; K0 shrinks them
            halves[:, :, 1] *= ((~decay).to(p1.dtype) * (1 - gamma) ** 0.5)[:, None, None]
            jumped |= decay
        self._leave(states[jumped], row[jumped])

    def _leave(self, states: torch.Tensor, row: torch.Tensor) -> None:
        """Trajectories of rows ``row`` jumped into ``states``: a row of one takes its state in place,
        each of a shared row's leaves it as a new row of one."""
        alone = self.count[row] == 1
        self.state[row[alone]] = states[alone]
        shared = row[~alone]
        self.count.index_add_(0, shared, torch.full_like(shared, -1))
        need = self.used + len(shared)
        if need > len(self._buffers[0]):
            grown = [b.new_empty(max(need, 2 * len(b)), b.shape[1]) for b in self._buffers]
            grown[0][: self.used] = self.state
            self._buffers = grown
        self._buffers[0][self.used : need] = states[~alone]
        self.used = need
        self.owner = torch.cat([self.owner, self.owner[shared]])
        self.count = torch.cat([self.count, torch.ones_like(shared)])

    def probabilities(self, circuits: int) -> torch.Tensor:
        """(circuits, 2**n): each circuit's mean distribution over its trajectories."""
        probs = torch.view_as_real(self.state).square().sum(-1)
        # rows every trajectory has left weigh nothing (their norm may have decayed to 0)
        weight = torch.where(self.count > 0, self.count / probs.sum(1), 0).to(probs.dtype)
        total = probs.new_zeros(circuits, probs.shape[1])
        return total.index_add_(0, self.owner, probs * weight[:, None]) / self.trajectories


def _apply_gate(
    state: torch.Tensor, matrix: torch.Tensor, gate: Gate, out: torch.Tensor, keep: float
) -> None:
    """``K0 ... K0 G`` into ``out``: the gate with each of its wires' no-decay evolution (``keep`` =
    sqrt(1 - gamma) on the wire's |1> amplitudes) folded into the same pass."""
    if keep != 1:
        matrix = matrix.clone()
        matrix[:, 1] *= keep  # K0 on the target
        if gate.control is not None:
            matrix *= keep  # K0 on the control, where it is 1
    idle = (1.0, keep)  # where the control is 0: K0 on the target only
    apply(state, matrix, gate.target, gate.control, out=out, diagonal=gate.name in DIAGONAL_GATES, idle=idle)


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
        rows.apply_noisy_gate(gate, inputs, weights, noise, generator)
    return rows.probabilities(circuits)
