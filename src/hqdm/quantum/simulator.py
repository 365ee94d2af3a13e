"""A batched state-vector simulator for RX- or RY-encoded circuits with a ``<Z>`` readout, in PyTorch.

How it is fast (see ``docs/performance.md`` for measurements):

* **Fused passes.** Wires are split into groups of at most four consecutive wires. Consecutive gates whose
  target lies in one group are fused (commuting gates past wire-disjoint ones) into one *pass*: a dense
  ``d x d`` unitary on that group (``d = 2**group size``), chosen per value of up to four *control* wires
  outside the group. One pass is one batched matrix multiply over the state, whatever the number of gates
  in it: a 12-qubit HQConv layer becomes three passes, an FQConv layer three passes. The unitaries of all
  passes of one shape are built together from the angles, once per call: gate by gate (a gate mixes each
  row with one other row), or by pairwise products of dense gate matrices when those are small.
* **Clusters before the full state.** The encoding is a product state. Until a pass entangles the last
  groups together, passes run on the small states of the clusters of groups they touch (16 or 256
  amplitudes per sample, ordinary autograd). A pass whose gates share one target acts on that wire alone
  (a 2x2 per control value) once its group is one cluster.
* **Low-rank states after that.** A pass that would join the last clusters through control wires is
  applied once per value of its outside controls instead: the state becomes a short sum of products
  ``sum_r cluster_1[r] (x) cluster_2[r] ...`` (the control cluster projected on each value), its rank
  multiplied by ``2**controls``. Passes inside one cluster stay cheap: a 3-layer HQConv circuit reaches 4
  terms of 16 + 256 amplitudes and never builds its 4096-amplitude state; ``<Z>`` comes from the clusters'
  Gram matrices. Once the rank would exceed ``RANK_CAP`` the clusters are multiplied out into the full
  state (deeper HQConv circuits).
* **The last pass in the readout.** A last pass on one target wire changes only that wire's ``<Z>``; it
  is read out as an observable on the state before it instead of applied (HQConv: rank 4, not 8).
* **Independent parts.** A circuit whose wires split into sets that no gate connects is simulated as
  separate smaller circuits (:mod:`hqdm.quantum.components`); alike parts run as extra circuits of one
  call. FQConv is four 3-qubit circuits this way.
* **Sample chunks on threads.** The cluster stage runs on a few hundred (circuit, sample) pairs at a time,
  one chunk per thread, each with its own autograd graph (backward in parallel too); the full-state stage
  chunks on its own.
* **Batch-last layout.** The state is ``(circuits, 2**n, samples)``, so each pass is a few large GEMMs.
  Passes whose control wires lie after their group in memory first move that group to the end (one copy).
* **Adjoint backward.** Only the final states are kept; the backward pass walks the passes in reverse,
  un-applying each unitary to recover its input state. Memory does not grow with circuit depth.
* **Chunks.** The full-state stage processes the batch in chunks that fit in cache.

Several independent circuits of the same structure (different weights, different inputs) run in one
call through the leading ``circuits`` dimension; the QVU-Net vertex uses this for its k circuits.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import torch
from torch.autograd.function import once_differentiable

from hqdm.quantum.circuits import Circuit, Gate
from hqdm.quantum.components import components

GROUP_SIZE = 4
MAX_CONTROLS = 4
#: most product terms kept before the clusters are multiplied out into the full state
RANK_CAP = 8
#: amplitudes per chunk of the batch (complex64: 4 MiB)
CHUNK_AMPLITUDES = 1 << 19
#: dense gate matrices (complex entries over all gates of a stack) up to which pass unitaries are built
#: by pairwise products instead of gate by gate
DENSE_GATE_ENTRIES = 1 << 16
#: (circuit, sample) pairs per call of the cluster stage, at least (more for small circuits)
SAMPLE_CHUNK = 512
#: the rotation axis of each parametrised gate's 2x2 block (index into ``_rotations``' stack)
ROTATION_AXIS = {"RX": 0, "CRX": 0, "RY": 1, "RZ": 2, "CRZ": 2}


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
    """A compiled pass: how to apply its unitaries (built by :func:`plan_unitaries`).

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
class UnitaryStack:
    """Fixed tensors that turn gate angles into the unitaries of several passes with the same block size ``d``
    and control count ``C`` at once, each pass's gates padded with identities to ``L`` gates.

    Gate ``l`` of pass ``p`` maps row i of the running product to
    ``diag * row i + off * row partner[l, p, i]`` (the row that differs in the target bit); ``diag`` and
    ``off`` are looked up per (l, p, control value, i) in a table of every gate's 2x2 entries followed by
    a 1 and a 0 (identity rows, fixed gates, padding).
    """

    members: tuple[int, ...]  # index of each pass in plan order (cluster passes, then full-state passes)
    weight_index: torch.Tensor  # (P * L,) index into the flat weight vector, -1 for fixed gates and padding
    axis: torch.Tensor  # (P * L,) long: ROTATION_AXIS of each gate's 2x2 (fixed gates: 0, unused)
    partner: torch.Tensor  # (L, P, d) long
    diag: torch.Tensor  # (L, P, C, d) long, into the table
    off: torch.Tensor  # (L, P, C, d) long, into the table


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
        """A last cluster pass on one target wire is read out, not applied (:func:`_last_pass_expval`)."""
        return not self.passes and bool(self.cluster_passes) and self.cluster_passes[-1].is_bit

    def memory_wires(self, layout: tuple[int, ...]) -> list[int]:
        return [w for g in layout for w in self.groups[g]]


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


def _gate_rows(
    gates: list[Gate], block: tuple[int, ...], controls: tuple[int, ...], n_gates: int, first: int, one: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``partner``, ``diag``, ``off`` of one pass (see :class:`UnitaryStack`), padded to ``n_gates``; table
    entries: ``first + 4 g + 2 out + in`` for gate g's 2x2, ``one`` and ``one + 1`` for the constants."""
    k, m = len(block), len(controls)
    d, n_values = 1 << k, 1 << m
    rows = torch.arange(d)
    partner = rows.repeat(n_gates, 1)
    diag = torch.full((n_gates, n_values, d), one)
    off = torch.full((n_gates, n_values, d), one + 1)
    local = {w: k - 1 - i for i, w in enumerate(block)}  # bit position inside the block index
    for g, gate in enumerate(gates):
        t_bit, ctrl = local[gate.target], gate.control
        partner[g] = rows ^ (1 << t_bit)
        bit = (rows >> t_bit) & 1
        for value in range(n_values):
            on = torch.ones(d, dtype=torch.bool)
            if ctrl in local:
                on &= ((rows >> local[ctrl]) & 1).bool()
            elif ctrl is not None:
                on &= bool((value >> (m - 1 - controls.index(ctrl))) & 1)
            if gate.name == "CNOT":  # X: the partner row, weight 1
                diag[g, value, on], off[g, value, on] = one + 1, one
            else:
                diag[g, value, on] = (first + 4 * g + 3 * bit)[on]
                off[g, value, on] = (first + 4 * g + 2 * bit + 1 - bit)[on]
    return partner, diag, off


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
        unitary_stacks=_unitary_stacks(
            [(s.gates, *shape) for s, shape in zip(specs, [*cluster_shapes, *shapes], strict=True)]
        ),
    )


def _unitary_stacks(
    passes: list[tuple[list[Gate], tuple[int, ...], tuple[int, ...]]],
) -> tuple[UnitaryStack, ...]:
    """One :class:`UnitaryStack` per (block size, control count) over ``passes`` (gates, block, controls)
    in plan order."""
    stacks = []
    for shape in sorted({(len(block), len(controls)) for _, block, controls in passes}):
        members = [i for i, (_, block, controls) in enumerate(passes) if (len(block), len(controls)) == shape]
        n_gates = max(len(passes[i][0]) for i in members)
        one = 4 * n_gates * len(members)
        rows = [_gate_rows(*passes[i], n_gates, 4 * n_gates * j, one) for j, i in enumerate(members)]
        weight_index = torch.full((len(members), n_gates), -1)
        axis = torch.zeros(len(members), n_gates, dtype=torch.long)
        for j, i in enumerate(members):
            gates = passes[i][0]
            weight_index[j, : len(gates)] = torch.tensor(
                [-1 if g.weight is None else g.weight for g in gates]
            )
            axis[j, : len(gates)] = torch.tensor([ROTATION_AXIS.get(g.name, 0) for g in gates])
        partner, diag, off = (torch.stack(parts, 1) for parts in zip(*rows, strict=True))
        stacks.append(
            UnitaryStack(
                members=tuple(members),
                weight_index=weight_index.flatten(),
                axis=axis.flatten(),
                partner=partner,
                diag=diag,
                off=off,
            )
        )
    return tuple(stacks)


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


# ----------------------------------------------------------------------------------------------------
# Pass unitaries from angles (ordinary autograd on small tensors)


def _rotations(angles: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """(K, L) angles -> (K, L, 2, 2) RX, RY or RZ matrices, gate l about ``axis[l]`` (see ROTATION_AXIS)."""
    half = angles / 2
    c, s = torch.cos(half), torch.sin(half)
    zero = torch.zeros_like(c)
    rx = [torch.complex(c, zero), torch.complex(zero, -s), torch.complex(zero, -s), torch.complex(c, zero)]
    ry = [torch.complex(c, zero), torch.complex(-s, zero), torch.complex(s, zero), torch.complex(c, zero)]
    rz = [torch.complex(c, -s), torch.complex(zero, zero), torch.complex(zero, zero), torch.complex(c, s)]
    stacked = torch.stack([torch.stack(m, dim=-1) for m in (rx, ry, rz)], dim=-2)  # (K, L, 3, 4)
    gate = torch.arange(axis.numel(), device=axis.device)
    return stacked[:, gate, axis].unflatten(-1, (2, 2))


def plan_unitaries(plan: ConnectedPlan, weights: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
    """The unitary per control value, (K, C, d, d), of every pass in plan order, for weights (K, n_weights).

    All passes of one shape are built together: gate by gate, each gate touching two entries per row, or,
    when the dense gate matrices are small (few circuits), by their pairwise products.
    """
    units: list[torch.Tensor] = [torch.empty(0)] * (len(plan.cluster_passes) + len(plan.passes))
    for stack in plan.unitary_stacks:
        for i, u in zip(stack.members, _stack_unitaries(stack, weights, dtype).unbind(1), strict=True):
            units[i] = u
    return units


def _stack_unitaries(stack: UnitaryStack, weights: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(K, P, C, d, d) unitaries of the stack's passes."""
    device = weights.device
    idx = stack.weight_index.to(device)
    angles = weights[:, idx.clamp(min=0)] * (idx >= 0)
    rot = _rotations(angles, stack.axis.to(device)).to(dtype).flatten(1)
    constants = torch.tensor([1.0, 0.0], dtype=dtype, device=device).expand(rot.shape[0], 2)
    table = torch.cat([rot, constants], 1)
    diag = table[:, stack.diag.to(device)]  # (K, L, P, C, d)
    off = table[:, stack.off.to(device)]
    partner = stack.partner.to(device)  # (L, P, d)
    if diag.numel() * diag.shape[-1] <= DENSE_GATE_ENTRIES:
        return _pairwise_product(diag, off, partner)
    k, n_gates, n_pass, n_ctrl, d = diag.shape
    rows = partner[:, :, None, :, None].expand(n_gates, n_pass, n_ctrl, d, d)
    product = torch.eye(d, dtype=dtype, device=device).expand(k, n_pass, n_ctrl, d, d)
    for g in range(n_gates):  # later gates act on the left: mix each row with its partner row
        swapped = product.gather(-2, rows[g].expand_as(product))
        product = diag[:, g, ..., None] * product + off[:, g, ..., None] * swapped
    return product


def _pairwise_product(diag: torch.Tensor, off: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """The same product from dense ``d x d`` gate matrices in log2(L) rounds of batched matmuls: fewer ops
    for long passes on few circuits, where each op's fixed cost outweighs its arithmetic."""
    k, n_gates, n_pass, n_ctrl, d = diag.shape
    columns = partner[None, :, :, None, :, None].expand(k, n_gates, n_pass, n_ctrl, d, 1)
    gates = torch.diag_embed(diag).scatter_add(-1, columns, off[..., None])
    while gates.shape[1] > 1:
        if gates.shape[1] % 2:
            eye = torch.eye(d, dtype=gates.dtype, device=gates.device)
            gates = torch.cat([gates, eye.expand(k, 1, n_pass, n_ctrl, d, d)], dim=1)
        gates = gates[:, 1::2] @ gates[:, 0::2]
    return gates[:, 0]


# ----------------------------------------------------------------------------------------------------
# Applying passes to stacks of full states (S, K, 2**n, N): S = 1 forward, S = 2 (psi, lam) backward


def _broadcast(u: torch.Tensor, p: Pass) -> torch.Tensor:
    """(K, C, d, d) -> (K, *view_shape, d, d): control dims in memory order, 1 for other wires."""
    k, _, d, _ = u.shape
    m = len(p.controls)
    u = u.reshape(k, *([2] * m), d, d).permute(0, *[1 + i for i in p.control_order], m + 1, m + 2)
    return u.reshape(k, *p.view_shape, d, d)


def _unbroadcast(g: torch.Tensor, p: Pass) -> torch.Tensor:
    """Inverse of ``_broadcast`` for a gradient already summed over the non-control dims."""
    k, d = g.shape[0], g.shape[-1]
    m = len(p.controls)
    inverse = [p.control_order.index(i) for i in range(m)]
    g = g.reshape(k, *([2] * m), d, d).permute(0, *[1 + i for i in inverse], m + 1, m + 2)
    return g.reshape(k, 1 << m, d, d)


def _apply(p: Pass, u: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Apply broadcast unitaries ``u`` (K, *view_shape, d, d) to ``states`` (S, K, 2**n, N)."""
    s, k, dim, n = states.shape
    if not p.is_bit:
        d = u.shape[-1]
        return torch.matmul(u, states.view(s, k, *([2] * p.position), d, -1)).view(states.shape)
    n_bits = dim.bit_length() - 1
    view = states.view(s, k, *([2] * n_bits), n)
    x0, x1 = view.select(2 + p.position, 0), view.select(2 + p.position, 1)
    out = torch.empty_like(states)
    out_view = out.view(view.shape)
    uu = u[..., None, :, :]  # a trailing axis for the samples
    for row in (0, 1):
        target = out_view.select(2 + p.position, row)
        torch.mul(x0, uu[..., row, 0], out=target)
        target.addcmul_(x1, uu[..., row, 1])
    return out


def _unitary_grad(p: Pass, lam_out: torch.Tensor, psi_in: torch.Tensor) -> torch.Tensor:
    """sum over samples of lam_out psi_in^H per control value, shaped like ``_broadcast``'s output."""
    k, dim, n = lam_out.shape
    if not p.is_bit:
        d = 1 << len(p.block)
        lam = lam_out.view(k, *([2] * p.position), d, -1)
        psi = psi_in.view(k, *([2] * p.position), d, -1)
        outer = torch.matmul(lam, psi.mH)
        reduce = [1 + i for i, size in enumerate(p.view_shape) if size == 1]
        return outer.sum(dim=reduce, keepdim=True) if reduce else outer
    n_bits = dim.bit_length() - 1
    lam = lam_out.view(k, *([2] * n_bits), n)
    psi = psi_in.view(k, *([2] * n_bits), n)
    reduce = [1 + i for i, size in enumerate(p.view_shape) if size == 1] + [n_bits]
    entries = [
        (lam.select(1 + p.position, a) * psi.select(1 + p.position, b).conj()).sum(dim=reduce, keepdim=True)
        for a in (0, 1)
        for b in (0, 1)
    ]
    return torch.stack(entries, -1).squeeze(-2).unflatten(-1, (2, 2))


def _relayout(
    plan: ConnectedPlan, states: torch.Tensor, src: tuple[int, ...], dst: tuple[int, ...]
) -> torch.Tensor:
    if src == dst:
        return states
    s, k, _, n = states.shape
    sizes = [1 << len(plan.groups[g]) for g in src]
    perm = [src.index(g) for g in dst]
    moved = states.view(s, k, *sizes, n).permute(0, 1, *[2 + i for i in perm], len(src) + 2)
    return moved.reshape(states.shape)


@cache
def _z_signs(plan: ConnectedPlan, layout: tuple[int, ...]) -> torch.Tensor:
    """(n_wires, 2**n) matrix of the eigenvalue of Z_w on each basis state in ``layout`` order."""
    wires = plan.memory_wires(layout)
    signs = torch.empty(len(wires), 1 << len(wires), dtype=torch.float64)
    signs[wires] = _cluster_signs(len(wires))  # row of memory position p -> row of the wire stored there
    return signs


def _chunks(k: int, n: int, pairs: int, threads: int) -> list[tuple[slice, slice]]:
    """Chunks of at most about ``pairs`` (circuit, sample) pairs, of near-equal size, aiming at a multiple
    of ``threads`` of them: groups of whole circuits when there are enough circuits, else equal sample
    ranges of each circuit (fewer when there are fewer samples). With 4 chunks of 512, 512, 512 and 128
    pairs, two threads would wait for the third big one."""
    count = -(-k * n // pairs)
    count = -(-count // threads) * threads
    if count <= k:
        bounds = [k * i // count for i in range(count + 1)]
        return [(slice(a, b), slice(0, n)) for a, b in pairwise(bounds) if b > a]
    step = -(-n // -(-count // k))
    return [(slice(c, c + 1), slice(s, s + step)) for c in range(k) for s in range(0, n, step)]


def _forward_chunk(
    plan: ConnectedPlan, views: list[torch.Tensor], state: torch.Tensor, kc: slice
) -> torch.Tensor:
    """The final state (K', 2**n, N') of one chunk, in the last pass's layout."""
    state = state[None]
    layout = tuple(range(len(plan.groups)))
    for p, view in zip(plan.passes, views, strict=True):
        state = _apply(p, view[kc], _relayout(plan, state, layout, p.layout))
        layout = p.layout
    return state[0]


def _backward_chunk(
    plan: ConnectedPlan, adjoints: list[torch.Tensor], psi: torch.Tensor, lam: torch.Tensor, kc: slice
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Un-apply the passes to (psi, lam): the adjoint of the chunk's initial state and each pass's dL/dU."""
    pair = torch.stack([psi, lam])
    layout = plan.passes[-1].layout
    grads = [torch.empty(0)] * len(plan.passes)
    for i in reversed(range(len(plan.passes))):
        p = plan.passes[i]
        pair = _relayout(plan, pair, layout, p.layout)
        layout = p.layout
        lam_out = pair[1]
        pair = _apply(p, adjoints[i][kc], pair)
        grads[i] = _unitary_grad(p, lam_out, pair[0])
    return _relayout(plan, pair, layout, tuple(range(len(plan.groups))))[1], grads


def _map_chunks(work, chunks: list) -> list:
    """Run ``work(chunk)`` over chunks on all intra-op threads, one torch thread per chunk.

    The passes are many small GEMMs that parallelise poorly inside one op; whole chunks in parallel keep
    each core on its own cache-sized state. torch releases the GIL inside its kernels.
    """
    threads = torch.get_num_threads()
    if threads == 1 or len(chunks) == 1:
        return [work(c) for c in chunks]

    # grad mode is per thread and off by default here; work that builds a graph (``_ThreadedChunks``)
    # enables it itself
    def untracked(chunk):
        with torch.no_grad():
            return work(chunk)

    torch.set_num_threads(1)  # new workers start with the thread count set here
    try:
        return list(_pool(os.getpid(), threads).map(untracked, chunks))
    finally:
        torch.set_num_threads(threads)


@cache
def _pool(pid: int, threads: int) -> ThreadPoolExecutor:
    """Worker threads kept for the process (per process id: a forked child gets its own). New threads on
    every call each started on a cold heap arena and faulted its pages in again."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hqdm-simulator")


class _FullStateExpvals(torch.autograd.Function):
    """<Z> of every wire after the full-state passes, with an adjoint (uncompute) backward."""

    @staticmethod
    def forward(
        ctx, plan: ConnectedPlan, chunk_amplitudes: int, initial: torch.Tensor, *unitaries: torch.Tensor
    ):
        k, _, n = initial.shape
        views = [_broadcast(u, p) for u, p in zip(unitaries, plan.passes, strict=True)]
        signs = _z_signs(plan, plan.passes[-1].layout).to(initial.real)
        out = signs.new_empty(k, plan.n_wires, n)
        chunks = _chunks(k, n, max(1, chunk_amplitudes >> plan.n_wires), torch.get_num_threads())

        def run(chunk: tuple[slice, slice]) -> torch.Tensor:
            kc, nc = chunk
            final = _forward_chunk(plan, views, initial[kc, :, nc].contiguous(), kc)
            out[kc, :, nc] = signs @ (final.real.square() + final.imag.square())
            return final

        ctx.finals = _map_chunks(run, chunks)
        ctx.plan, ctx.chunks, ctx.views = plan, chunks, views
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        plan: ConnectedPlan = ctx.plan
        adjoints = [_adjoint(v) for v in ctx.views]
        signs = _z_signs(plan, plan.passes[-1].layout).to(grad_out)
        initial_grad = grad_out.new_empty(
            grad_out.shape[0], 1 << plan.n_wires, grad_out.shape[2], dtype=ctx.finals[0].dtype
        )

        def run(index: int) -> tuple[slice, list[torch.Tensor]]:
            (kc, nc), psi = ctx.chunks[index], ctx.finals[index]
            # lam = dL/d(conj psi); the pair (psi, lam) is un-applied pass by pass.
            lam, grads = _backward_chunk(plan, adjoints, psi, psi * (signs.mT @ grad_out[kc, :, nc]), kc)
            initial_grad[kc, :, nc] = 2 * lam
            return kc, grads

        unitary_grads = [torch.zeros_like(v) for v in ctx.views]
        for kc, grads in _map_chunks(run, list(range(len(ctx.chunks)))):
            for total, part in zip(unitary_grads, grads, strict=True):
                total[kc] += part
        ctx.finals = None
        # torch's convention for complex inputs: the gradient is 2 dL/d(conj z) for a real loss
        results = [2 * _unbroadcast(g, p) for g, p in zip(unitary_grads, plan.passes, strict=True)]
        return (None, None, initial_grad, *results)


def _adjoint(u: torch.Tensor) -> torch.Tensor:
    """A materialised conjugate transpose: a lazy ``.mH`` view makes complex bmm take a slow path."""
    return torch.conj_physical(u).transpose(-1, -2).contiguous()


def _encode(inputs: torch.Tensor, plan: ConnectedPlan, dtype: torch.dtype) -> list[torch.Tensor]:
    """RX(x)|0> = [cos, -i sin] or RY(x)|0> = [cos, sin] (of x/2) per wire: a list of (K, 1, 2, N) states
    (axis 1 is the rank of a cluster, see ``_cluster_pass``)."""
    half = inputs.transpose(1, 2).to(dtype.to_real()) / 2
    c, s = torch.cos(half), torch.sin(half)
    zero = torch.zeros_like(c)
    one = torch.complex(zero, -s) if plan.encoding == "RX" else torch.complex(s, zero)
    qubits = torch.stack([torch.complex(c, zero), one], 2)
    return [qubits[:, None, w] for w in range(plan.n_wires)]


def _letters(wires) -> str:
    return "".join(chr(ord("a") + w) for w in wires)


# Clusters are tensors (K, R, 2, ..., 2, N) with one axis per wire (ascending); einsum letters: z = circuit,
# x = rank term, y = sample, a.. = wires (upper case: a block's output). The state is the sum over x of the
# product of all clusters.


def _aligned(state: torch.Tensor, part: tuple[int, ...], wires: tuple[int, ...]) -> torch.Tensor:
    """A cluster on ``part`` viewed with one axis per wire of ``wires`` (size 1 where absent)."""
    k, rank, n = state.shape[0], state.shape[1], state.shape[-1]
    return state.reshape(k, rank, *[2 if w in part else 1 for w in wires], n)


def _product(
    clusters: dict[tuple[int, ...], torch.Tensor], parts: list[tuple[int, ...]], wires
) -> torch.Tensor:
    """Elementwise (broadcast) product of clusters, term by term: an outer product with the samples last,
    which stays one vectorised pass (an einsum would batch tiny matrices over the samples)."""
    result = _aligned(clusters[parts[0]], parts[0], wires)
    for part in parts[1:]:
        result = result * _aligned(clusters[part], part, wires)
    return result


def _join(clusters: dict[tuple[int, ...], torch.Tensor], parts: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Replace ``parts`` by their product (term by term), one axis per wire in ascending order."""
    wires = tuple(sorted(w for part in parts for w in part))
    if len(parts) > 1:
        clusters[wires] = _product(clusters, parts, wires)
        for part in parts:
            del clusters[part]
    return wires


def _cluster_pass(p: Pass, u: torch.Tensor, clusters: dict[tuple[int, ...], torch.Tensor]) -> None:
    """Apply a pass to the clusters it touches (einsum on tensors with one axis per wire).

    The unitary first acts on its block's cluster with the outside control bits as new axes (no larger than
    that cluster times 2**controls). A joining pass then multiplies the result with the control clusters; a
    factoring pass (``p.factor``) instead turns those control axes into new rank terms: term (x, v) holds
    the control clusters projected on control value v and the block cluster transformed by U_v.
    """
    block = _join(clusters, [ws for ws in clusters if set(ws) & set(p.block)])
    others = [ws for ws in clusters if ws != block and set(ws) & set(p.controls)]
    k = u.shape[0]
    u = u.reshape(k, *([2] * (len(p.controls) + 2 * len(p.block))))
    outside_wires = [c for c in p.controls if c not in block]
    outside = _letters(outside_wires)

    def renamed(wires: tuple[int, ...]) -> str:  # block wires carry their output (upper-case) letter
        return "".join(_letters([w]).upper() if w in p.block else _letters([w]) for w in wires)

    applied = torch.einsum(
        f"z{_letters(p.controls)}{renamed(p.block)}{_letters(p.block)},zx{_letters(block)}y->zx{outside}{renamed(block)}y",
        u,
        clusters.pop(block),
    )
    if not others:
        clusters[block] = applied
    elif p.factor:
        _factor(clusters, block, applied, outside_wires)
    else:  # join: the control axes of ``applied`` meet the control wires of the other clusters
        merged = tuple(sorted(set(block).union(*others)))
        wires = tuple(sorted(set(block) | set(outside_wires)))
        axes = list(range(2, 2 + len(outside_wires)))
        clusters[wires] = applied.movedim(axes, [2 + wires.index(c) for c in outside_wires])
        joined = _product(clusters, [wires, *others], merged)
        for ws in (wires, *others):
            del clusters[ws]
        clusters[merged] = joined


def _factor(
    clusters: dict[tuple[int, ...], torch.Tensor],
    block: tuple[int, ...],
    applied: torch.Tensor,
    controls: list[int],
) -> None:
    """Rank terms (x, v) for the outside control values v: ``applied`` (K, R, 2 per control, block..., N)
    is the block cluster per v; every other cluster is repeated over v and projected on its control bits."""
    k, rank, m = applied.shape[0], applied.shape[1], len(controls)
    clusters[block] = applied.reshape(k, rank << m, *applied.shape[2 + m :])
    eye = torch.eye(2, dtype=applied.dtype, device=applied.device)
    for ws in [ws for ws in clusters if ws != block]:
        state = clusters[ws]
        wire_shape = state.shape[2:]
        state = state.reshape(k, rank, *([1] * m), *wire_shape)
        for i, c in enumerate(controls):
            if c in ws:  # keep only the amplitudes whose bit c equals the term's value v_i
                mask = [1] * state.dim()
                mask[2 + i] = mask[2 + m + ws.index(c)] = 2
                state = state * eye.view(mask)
        clusters[ws] = state.expand(k, rank, *([2] * m), *wire_shape).reshape(k, rank << m, *wire_shape)


def _materialize(clusters: dict[tuple[int, ...], torch.Tensor], n_wires: int) -> torch.Tensor:
    """The full state (K, 2**n, N): the sum over rank terms of the product of all clusters."""
    parts, wires = list(clusters), tuple(range(n_wires))
    rank = next(iter(clusters.values())).shape[1]
    full = None
    for x in range(rank):  # term by term: never R full states at once
        term = _product({ws: clusters[ws][:, x : x + 1] for ws in parts}, parts, wires)
        full = term if full is None else full + term
    return full.reshape(full.shape[0], 1 << n_wires, full.shape[-1])


def _readout(plan: ConnectedPlan, clusters: dict[tuple[int, ...], torch.Tensor]) -> torch.Tensor:
    """<Z_i> (K, n_wires, N) from the clusters when no full-state pass is left, without the full state."""
    parts = list(clusters)
    flat = [clusters[ws].flatten(2, -2).permute(0, 3, 1, 2) for ws in parts]  # (K, N, R, 2**len(ws))
    signs = [_cluster_signs(len(ws)).to(flat[0].device, flat[0].dtype.to_real()) for ws in parts]
    out = _GramReadout.apply(signs, *flat)  # (K, N, wires of the clusters in order)
    order = [w for ws in parts for w in ws]
    return out[:, :, [order.index(w) for w in range(plan.n_wires)]].transpose(1, 2)


def _others(tensors: list[torch.Tensor], skip: set[int]) -> torch.Tensor | None:
    """Elementwise product of the tensors not in ``skip`` (None when there are none)."""
    result = None
    for i, t in enumerate(tensors):
        if i not in skip:
            result = t if result is None else result * t
    return result


class _GramReadout(torch.autograd.Function):
    """<Z> of every cluster's wires for ``psi = sum_r prod_c T_c[r]``, clusters T_c (K, N, R, d_c).

    The probabilities of cluster c's basis states are ``P_c(i) = Re sum_s conj(T_c[s, i]) M_c[s, i]`` with
    ``M_c[s, i] = sum_r W_c[r, s] T_c[r, i]``, ``W_c`` the elementwise product of the other clusters' Gram
    matrices ``G[r, s] = sum_i T[r, i] conj(T[s, i])``. The backward is written out: for
    ``L = sum_c gamma_c . P_c`` (``gamma_c`` the output gradient mapped to basis states),
    torch's complex gradient ``2 dL/dconj(T_c)[s, i] = 2 (gamma_c(i) M_c[s, i] + sum_r K_c[r, s] T_c[r, i])``,
    where ``K_c`` sums, over the other clusters o, their gamma-weighted Gram matrix ``H_o`` times the Gram
    matrices of the rest. Not differentiable twice.
    Every product takes the transposed Gram matrices (``G^T = conj(G)``, Hermitian) from ``conj(T) T^T``
    on one conjugated copy of each cluster, so that no matrix product has to copy a conjugated operand.
    """

    @staticmethod
    def forward(ctx, signs: list[torch.Tensor], *flat: torch.Tensor) -> torch.Tensor:
        terms = [t.contiguous() for t in flat]
        conjs = [torch.conj_physical(t) for t in terms]
        grams_t = [c @ t.mT for c, t in zip(conjs, terms, strict=True)]  # G^T
        mixed = []
        for c, t in enumerate(terms):
            weight_t = _others(grams_t, {c})
            # a lone cluster's W is the empty product: all ones
            mixed.append(t.sum(-2, keepdim=True).expand_as(t) if weight_t is None else weight_t @ t)
        ctx.signs = signs
        ctx.save_for_backward(*terms, *conjs, *grams_t, *mixed)
        probs = [(c * m).real.sum(-2) for c, m in zip(conjs, mixed, strict=True)]
        return torch.cat([p @ z.T for p, z in zip(probs, signs, strict=True)], dim=-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        n = len(ctx.signs)
        saved = ctx.saved_tensors
        terms, conjs, grams_t, mixed = (saved[i * n : (i + 1) * n] for i in range(4))
        sizes = [z.shape[0] for z in ctx.signs]
        per_cluster = grad_out.split(sizes, dim=-1)
        gammas = [(g @ z)[..., None, :] for g, z in zip(per_cluster, ctx.signs, strict=True)]
        weighted_t = [(c * g) @ t.mT for c, g, t in zip(conjs, gammas, terms, strict=True)]  # H^T
        grads = []
        for c, t in enumerate(terms):
            grad = mixed[c] * (2 * gammas[c])  # the factor 2 on the small operands: no pass over grad
            coupling_t = None  # K_c^T
            for o in range(n):
                if o != c:
                    rest = _others(grams_t, {c, o})
                    k = weighted_t[o] if rest is None else weighted_t[o] * rest
                    coupling_t = k if coupling_t is None else coupling_t + k
            if coupling_t is not None:  # grad += 2 K_c^T T_c, in place
                grad.flatten(0, -3).baddbmm_((2 * coupling_t).flatten(0, -3), t.flatten(0, -3))
            grads.append(grad)
        return (None, *grads)


def _last_pass_expval(
    p: Pass, u: torch.Tensor, clusters: dict[tuple[int, ...], torch.Tensor]
) -> torch.Tensor:
    """<Z_t> (K, N) after the one-target pass ``p`` (target t, unitaries ``u`` (K, C, 2, 2)), read on the
    clusters before it.

    The pass maps Z_t to ``sum_v Pi_v (x) O_v`` (``Pi_v`` projects its controls on value v,
    ``O_v = u_v^H Z u_v`` acts on t) and leaves every other Z alone, since its controls are diagonal. So the
    other wires are read without it, and a last pass that would factor doubles no rank. Each cluster gives
    ``M_c[v, r, s] = <T_c[s]| (c's part of Pi_v O_v) |T_c[r]>`` from its Gram matrix with the wires of that
    part left open; <Z_t> sums the product of the M_c over v and the rank terms r, s.
    """
    z = torch.tensor([1.0, -1.0], dtype=u.dtype, device=u.device)
    observables = _adjoint(u) @ (z[:, None] * u)  # (K, V, 2, 2)
    total = None
    for wires, state in clusters.items():
        open_wires = [w for w in (p.block[0], *p.controls) if w in wires]
        n, o = len(wires), len(open_wires)
        rest = [w for w in wires if w not in open_wires]
        ket = state.permute(0, -1, 1, *[2 + wires.index(w) for w in (*open_wires, *rest)])
        ket = ket.reshape(*ket.shape[:2], ket.shape[2] << o, 1 << (n - o))  # (K, N, R * 2**o, rest)
        gram = _HermitianGram.apply(ket)  # rows (r, a), columns (s, b)
        gram = gram.unflatten(-1, (-1, 1 << o)).unflatten(-3, (-1, 1 << o))  # (K, N, R, 2**o, R, 2**o)
        operator = _cluster_operator(p, open_wires, observables)  # (K, V, 2**o out b, 2**o in a)
        share = torch.einsum("zvba,zyrasb->zyvrs", operator, gram)
        total = share if total is None else total * share
    return total.sum((-3, -2, -1)).real


class _HermitianGram(torch.autograd.Function):
    """``A conj(A)^T`` over the last axis, with the backward ``(G + G^H) A``: one product with A, where
    autograd of the product takes two and adds their large results."""

    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:
        a = a.contiguous()
        ctx.save_for_backward(a)
        return a @ torch.conj_physical(a).mT

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (a,) = ctx.saved_tensors
        return (grad + _adjoint(grad)) @ a


def _cluster_operator(p: Pass, open_wires: list[int], observables: torch.Tensor) -> torch.Tensor:
    """A cluster's part of ``Pi_v O_v`` on ``open_wires`` (target first if present), (K, V, 2**o, 2**o):
    O_v on the target, the projector on bit v_j on each control j."""
    k, n_values = observables.shape[:2]
    operator = torch.ones(k, n_values, 1, 1, dtype=observables.dtype, device=observables.device)
    values = torch.arange(n_values, device=observables.device)
    m = len(p.controls)
    for w in open_wires:
        if w == p.block[0]:
            factor = observables
        else:
            bit = ((values >> (m - 1 - p.controls.index(w))) & 1).to(observables.dtype)
            factor = torch.diag_embed(torch.stack([1 - bit, bit], -1)).expand(k, -1, -1, -1)
        operator = (
            (operator[..., :, None, :, None] * factor[..., None, :, None, :]).flatten(-4, -3).flatten(-2)
        )
    return operator


@cache
def _cluster_signs(n: int) -> torch.Tensor:
    """(n, 2**n): eigenvalue of Z on wire position p (most significant first) of each basis state."""
    index = torch.arange(1 << n)
    return torch.stack([1.0 - 2.0 * ((index >> (n - 1 - p)) & 1) for p in range(n)]).to(torch.float64)


def simulate(
    plan: Plan,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    *,
    dtype: torch.dtype = torch.complex64,
    chunk_amplitudes: int = CHUNK_AMPLITUDES,
    sample_chunk: int | None = None,
) -> torch.Tensor:
    """<Z_i> for K circuits of one structure: inputs (K, N, n_wires) RX angles, weights (K, n_weights).

    Returns (K, N, n_wires) in the real dtype matching ``dtype`` (complex64 -> float32).
    Differentiable with respect to inputs and weights. No argument checking: see :func:`hqdm.quantum.expvals`.
    ``sample_chunk``: (circuit, sample) pairs per call of the cluster stage; by default ``SAMPLE_CHUNK``, or
    more for small circuits, up to ``chunk_amplitudes`` amplitudes of the full state.
    """
    if torch.is_autocast_enabled(inputs.device.type):
        # under bf16 autocast the caller's angles may be bf16: simulate at full precision regardless
        real = torch.empty((), dtype=dtype).real.dtype
        with torch.autocast(inputs.device.type, enabled=False):
            return simulate(
                plan,
                inputs.to(real),
                weights.to(real),
                dtype=dtype,
                chunk_amplitudes=chunk_amplitudes,
                sample_chunk=sample_chunk,
            )
    options = {"dtype": dtype, "chunk_amplitudes": chunk_amplitudes, "sample_chunk": sample_chunk}
    if plan.order is None:
        return _simulate_connected(plan.parts[0].plan, inputs, weights, **options)
    k, n = inputs.shape[0], inputs.shape[1]
    outputs = []
    for part in plan.parts:
        copies, m = part.wires.shape
        # copies run as extra circuits: (K, N, copies * m) -> (K * copies, N, m)
        x = inputs[:, :, part.wires.flatten().to(inputs.device)].unflatten(2, (copies, m))
        x = x.permute(0, 2, 1, 3).reshape(k * copies, n, m)
        w = weights[:, part.weights.flatten().to(weights.device)].reshape(k * copies, part.weights.shape[1])
        z = _simulate_connected(part.plan, x, w, **options)
        outputs.append(z.reshape(k, copies, n, m).permute(0, 2, 1, 3).reshape(k, n, copies * m))
    return torch.cat(outputs, dim=2)[:, :, plan.order.to(inputs.device)]


def _simulate_connected(
    plan: ConnectedPlan,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    *,
    dtype: torch.dtype,
    chunk_amplitudes: int,
    sample_chunk: int | None,
) -> torch.Tensor:
    """:func:`simulate` for one connected circuit."""
    k, n = inputs.shape[0], inputs.shape[1]
    if sample_chunk is None:
        sample_chunk = max(SAMPLE_CHUNK, chunk_amplitudes >> plan.n_wires)
    real_weights = weights.to(dtype.to_real())
    # once per call, not per chunk: the gate products of every pass and their autograd graphs
    units = plan_unitaries(plan, real_weights, dtype)
    split = len(plan.cluster_passes)

    def work(chunk: tuple[slice, slice], tensors: list[torch.Tensor]) -> torch.Tensor:
        (kc, nc), (x, *us) = chunk, tensors
        cluster_units, full_units = [u[kc] for u in us[:split]], [u[kc] for u in us[split:]]
        return _simulate_chunk(plan, x[kc, nc], cluster_units, full_units, dtype, chunk_amplitudes)

    # the cluster stage is many small ops that parallelise poorly inside one op: run it on cache-sized
    # (circuit, sample) chunks, one chunk per thread
    chunks = _chunks(k, n, sample_chunk, torch.get_num_threads())
    tensors = [inputs, *units]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _ThreadedChunks.apply(work, chunks, *tensors)
    return _gather(chunks, _map_chunks(lambda c: work(c, tensors), chunks), inputs)


def _gather(
    chunks: list[tuple[slice, slice]], parts: list[torch.Tensor], inputs: torch.Tensor
) -> torch.Tensor:
    """The chunks' (K', N', n_wires) results in one (K, N, n_wires) tensor, for inputs (K, N, n_wires)."""
    out = parts[0].new_empty(inputs.shape)
    for (kc, nc), part in zip(chunks, parts, strict=True):
        out[kc, nc] = part
    return out


class _ThreadedChunks(torch.autograd.Function):
    """``work(chunk, tensors)`` over chunks on a thread pool, each chunk with its own autograd graph.

    torch's autograd runs one backward at a time per call; here every chunk's backward is a separate
    ``torch.autograd.grad`` on its own thread, so the backward of the cluster stage is parallel too.
    """

    @staticmethod
    def forward(ctx, work, chunks, *tensors: torch.Tensor) -> torch.Tensor:
        def run(chunk):
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_(t.requires_grad) for t in tensors]
                return leaves, work(chunk, leaves)

        ctx.graphs, ctx.chunks = _map_chunks(run, chunks), chunks
        return _gather(chunks, [result.detach() for _, result in ctx.graphs], tensors[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        def run(index: int) -> list[torch.Tensor | None]:
            (kc, nc), (leaves, result) = ctx.chunks[index], ctx.graphs[index]
            wanted = [leaf for leaf in leaves if leaf.requires_grad]
            grads = iter(torch.autograd.grad(result, wanted, grad_out[kc, nc], allow_unused=True))
            return [next(grads) if leaf.requires_grad else None for leaf in leaves]

        totals: list[torch.Tensor | None] = [None] * len(ctx.graphs[0][0])
        for grads in _map_chunks(run, list(range(len(ctx.chunks)))):
            for i, g in enumerate(grads):
                if g is not None:
                    totals[i] = g if totals[i] is None else totals[i] + g
        ctx.graphs = None
        return (None, None, *totals)


def _simulate_chunk(
    plan: ConnectedPlan,
    inputs: torch.Tensor,
    cluster_units: list[torch.Tensor],
    full_units: list[torch.Tensor],
    dtype: torch.dtype,
    chunk_amplitudes: int,
) -> torch.Tensor:
    """:func:`simulate` on one chunk, given the pass unitaries of its circuits: (K', N', n_wires)."""
    clusters = {(w,): q for w, q in enumerate(_encode(inputs, plan, dtype))}
    applied = len(plan.cluster_passes) - plan.reads_last_pass
    for p, u in zip(plan.cluster_passes[:applied], cluster_units[:applied], strict=True):
        _cluster_pass(p, u, clusters)
    if plan.passes:
        full = _materialize(clusters, plan.n_wires)
        out = _FullStateExpvals.apply(plan, chunk_amplitudes, full, *full_units)
    else:
        out = _readout(plan, clusters)
    if plan.reads_last_pass:
        t = plan.cluster_passes[-1].block[0]
        z_t = _last_pass_expval(plan.cluster_passes[-1], cluster_units[-1], clusters)
        out = torch.cat([out[:, :t], z_t[:, None], out[:, t + 1 :]], dim=1)
    return out.transpose(1, 2)
