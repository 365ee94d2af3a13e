"""Compiling a circuit into a plan: fused passes, the cluster stage and the full-state stage.

Wires are split into groups of at most four consecutive wires. Consecutive gates whose target lies in one
group are fused (commuting gates past wire-disjoint ones) into one *pass*: a dense ``d x d`` unitary on that
group (``d = 2**group size``), chosen per value of up to four *control* wires outside the group. One pass is
one batched matrix multiply over the state, whatever the number of gates in it: a 12-qubit HQConv layer
becomes three passes. A pass whose gates share one target becomes a *bit pass* on that wire alone once its
group is one cluster (:mod:`~hqdm.quantum.engine.clusters`).

The plan also decides where the cluster stage ends (at most ``RANK_CAP`` product terms) and the memory
layout of the full-state stage (:mod:`~hqdm.quantum.engine.fullstate`). A circuit whose wires split into
sets that no gate connects becomes several parts (:mod:`hqdm.quantum.components`); alike parts run as extra
circuits of one call. Compiling happens once per circuit (cached); nothing here touches angles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from hqdm.quantum.circuits import Circuit, Gate
from hqdm.quantum.components import components
from hqdm.quantum.engine.unitaries import UnitaryStack, pass_unitaries, unitary_stacks

GROUP_SIZE = 4
MAX_CONTROLS = 4
#: most product terms kept before the clusters are multiplied out into the full state
RANK_CAP = 8


@dataclass
class _PassSpec:
    """Gates fused into one unitary on ``group``; ``controls`` are wires outside it (sorted)."""

    group: int
    controls: tuple[int, ...]
    gates: list[Gate]

    def wires(self, groups: list[tuple[int, ...]]) -> set[int]:
        return set(groups[self.group]) | set(self.controls)


@dataclass(frozen=True)
class Pass:
    """A compiled pass: how to apply its unitaries (built by
    :meth:`ConnectedPlan.unitaries`).

    ``block`` is either a whole group (a dense pass: batched matmul) or a single target wire (a bit pass:
    elementwise, for passes whose gates all share one target, e.g. the last coupling gates of a layer).
    ``layout`` is the memory order of the groups while the pass runs; ``view_shape`` is the broadcast shape
    of the unitary over the other wires in memory order (2 for a control wire, 1 otherwise).
    """

    group: int
    block: tuple[int, ...]
    controls: tuple[int, ...]
    layout: tuple[int, ...]
    position: int  # dense: number of wires before the group in memory; bit: memory index of the target
    view_shape: tuple[int, ...]
    control_order: tuple[int, ...]  # canonical index of each control, in memory order
    factor: bool = False  # cluster pass applied per outside-control value instead of joining clusters

    @property
    def is_bit(self) -> bool:
        return len(self.block) == 1


@dataclass(frozen=True)
class ConnectedPlan:
    """How one connected circuit is simulated: cluster passes on small factors, then full-state passes."""

    n_wires: int
    n_weights: int
    encoding: str
    groups: tuple[tuple[int, ...], ...]
    cluster_passes: tuple[Pass, ...]
    passes: tuple[Pass, ...]
    unitary_stacks: tuple[UnitaryStack, ...]

    @property
    def reads_last_pass(self) -> bool:
        """A last cluster pass on one target wire is read out, not applied
        (:func:`~hqdm.quantum.engine.readout.last_pass_expval`)."""
        return not self.passes and bool(self.cluster_passes) and self.cluster_passes[-1].is_bit

    def memory_wires(self, layout: tuple[int, ...]) -> list[int]:
        return [w for g in layout for w in self.groups[g]]

    def unitaries(self, weights: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
        """The unitary per control value, (K, C, d, d), of every pass (cluster passes first), for weights
        (K, n_weights)."""
        return pass_unitaries(
            self.unitary_stacks, len(self.cluster_passes) + len(self.passes), weights, dtype
        )


@dataclass(frozen=True)
class Part:
    """Copies of one connected sub-circuit: ``wires`` (copies, m) and ``weights`` (copies, L) index the
    inputs and weights of the whole circuit (see :class:`hqdm.quantum.components.Component`)."""

    plan: ConnectedPlan
    wires: torch.Tensor
    weights: torch.Tensor


@dataclass(frozen=True)
class Plan:
    """How a circuit is simulated: each independent part on its own; ``order`` puts their outputs back
    in wire order (``None`` when the circuit is one part covering every wire and weight in order)."""

    n_wires: int
    n_weights: int
    parts: tuple[Part, ...]
    order: torch.Tensor | None


@cache
def compile_circuit(circuit: Circuit, rank_cap: int = RANK_CAP) -> Plan:
    """Split a circuit into independent sub-circuits (:func:`components`) and compile each once."""
    found = components(circuit)
    parts = tuple(
        Part(
            _compile_connected(c.circuit, rank_cap),
            torch.tensor(c.wires, dtype=torch.long),
            torch.tensor(c.weights, dtype=torch.long).reshape(len(c.weights), c.circuit.n_weights),
        )
        for c in found
    )
    whole = (
        len(found) == 1
        and found[0].wires == (tuple(range(circuit.n_wires)),)
        and found[0].weights == (tuple(range(circuit.n_weights)),)
    )
    order = None if whole else torch.argsort(torch.cat([p.wires.flatten() for p in parts]))
    return Plan(circuit.n_wires, circuit.n_weights, parts, order)


def _compile_connected(circuit: Circuit, rank_cap: int) -> ConnectedPlan:
    """Fuse a circuit's gates into passes; those until the state would exceed ``rank_cap`` product terms
    run on clusters, the rest on the full state."""
    groups = _groups(circuit.n_wires)
    specs = _fuse(circuit, groups)
    factors = _split_cluster_stage(specs, groups, rank_cap)
    cluster_specs, full_specs = specs[: len(factors)], specs[len(factors) :]
    cluster_shapes = _cluster_blocks(cluster_specs, groups)
    shapes = [_block_and_controls(s, groups) for s in full_specs]
    layouts = _layouts(full_specs, [b for b, _ in shapes], groups)
    return ConnectedPlan(
        n_wires=circuit.n_wires,
        n_weights=circuit.n_weights,
        encoding=circuit.encoding,
        groups=tuple(groups),
        cluster_passes=tuple(
            _compile_pass(s, block, controls, groups, None, factor)
            for s, (block, controls), factor in zip(cluster_specs, cluster_shapes, factors, strict=True)
        ),
        passes=tuple(
            _compile_pass(s, block, controls, groups, layout)
            for s, (block, controls), layout in zip(full_specs, shapes, layouts, strict=True)
        ),
        unitary_stacks=unitary_stacks(
            [(s.gates, *shape) for s, shape in zip(specs, [*cluster_shapes, *shapes], strict=True)]
        ),
    )


def _groups(n_wires: int) -> list[tuple[int, ...]]:
    return [tuple(range(s, min(s + GROUP_SIZE, n_wires))) for s in range(0, n_wires, GROUP_SIZE)]


def _fuse(circuit: Circuit, groups: list[tuple[int, ...]]) -> list[_PassSpec]:
    """Greedily fuse each gate into the latest pass on its group that it can commute back to."""
    group_of = {w: g for g, ws in enumerate(groups) for w in ws}
    specs: list[_PassSpec] = []
    for gate in circuit.gates:
        group = group_of[gate.target]
        external = {w for w in gate.wires if group_of[w] != group}
        for spec in reversed(specs):
            merged = set(spec.controls) | external
            if spec.group == group and len(merged) <= MAX_CONTROLS:
                spec.controls = tuple(sorted(merged))
                spec.gates.append(gate)
                break
            if spec.wires(groups) & set(gate.wires):
                specs.append(_PassSpec(group, tuple(sorted(external)), [gate]))
                break
        else:
            specs.append(_PassSpec(group, tuple(sorted(external)), [gate]))
    return specs


def _block_and_controls(
    spec: _PassSpec, groups: list[tuple[int, ...]]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A single-target pass becomes a bit pass (all other wires controls); others act on the whole group."""
    targets = {g.target for g in spec.gates}
    if len(targets) == 1:
        controls = {w for g in spec.gates for w in g.wires} - targets
        if len(controls) <= MAX_CONTROLS:
            return (targets.pop(),), tuple(sorted(controls))
    return groups[spec.group], spec.controls


def _cluster_blocks(
    specs: list[_PassSpec], groups: list[tuple[int, ...]]
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Block and controls of each cluster pass: a single-target pass on a group that an earlier pass
    already made one cluster acts on its target wire alone (a 2x2 per control value, not a 16x16)."""
    touched: set[int] = set()
    result = []
    for spec in specs:
        result.append(
            _block_and_controls(spec, groups)
            if spec.group in touched
            else (groups[spec.group], spec.controls)
        )
        touched.add(spec.group)
    return result


def _split_cluster_stage(specs: list[_PassSpec], groups: list[tuple[int, ...]], rank_cap: int) -> list[bool]:
    """Which leading passes run on clusters, each flagged True if it factors (raises the rank) instead of
    joining; the rest run on the full state. The cluster stage ends when the rank would pass ``rank_cap``."""
    group_of = {w: g for g, ws in enumerate(groups) for w in ws}
    cluster_of = list(range(len(groups)))
    rank = 1
    factors: list[bool] = []
    for spec in specs:
        joined = {cluster_of[spec.group]} | {cluster_of[group_of[c]] for c in spec.controls}
        merged = [min(joined) if c in joined else c for c in cluster_of]
        if len(groups) == 1 or len(joined) == 1 or len(set(merged)) > 1:
            factors.append(False)
            cluster_of = merged
            continue
        outside = sum(cluster_of[group_of[c]] != cluster_of[spec.group] for c in spec.controls)
        if rank << outside <= rank_cap:
            factors.append(True)
            rank <<= outside
            continue
        if rank == 1:
            factors.append(False)  # a product state: this pass joins everything on the small clusters
        break  # a low-rank state is multiplied out first; the full state takes over
    return factors


def _layouts(
    specs: list[_PassSpec], blocks: list[tuple[int, ...]], groups: list[tuple[int, ...]]
) -> list[tuple[int, ...]]:
    """Memory order of groups per pass: a dense pass needs its control wires before its group."""
    group_of = {w: g for g, ws in enumerate(groups) for w in ws}
    layout = tuple(range(len(groups)))
    result = []
    for spec, block in zip(specs, blocks, strict=True):
        if len(block) > 1:
            position = layout.index(spec.group)
            if any(layout.index(group_of[c]) > position for c in spec.controls):
                layout = (*(g for g in layout if g != spec.group), spec.group)
        result.append(layout)
    return result


def _compile_pass(
    spec: _PassSpec,
    block: tuple[int, ...],
    controls: tuple[int, ...],
    plan_groups: list[tuple[int, ...]],
    layout: tuple[int, ...] | None,
    factor: bool = False,
) -> Pass:
    """``layout`` is None for cluster passes, which are applied by einsum and need no memory view."""
    memory = [] if layout is None else [w for g in layout for w in plan_groups[g]]
    position = memory.index(block[0]) if memory else -1
    others = [w for w in memory if w != block[0]] if len(block) == 1 else memory[: max(position, 0)]
    in_memory = sorted(controls, key=others.index) if memory else []
    return Pass(
        group=spec.group,
        block=block,
        controls=controls,
        layout=layout,
        position=position,
        view_shape=tuple(2 if w in controls else 1 for w in others) if memory else (),
        control_order=tuple(controls.index(c) for c in in_memory),
        factor=factor,
    )
