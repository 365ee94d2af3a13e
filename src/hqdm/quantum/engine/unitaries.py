"""Pass unitaries from angles: fixed index tables built at compile time, the unitaries once per call.

Every pass of the plan is a unitary per value of its control wires. All passes of one shape (block size,
control count) are built together from the weights with ordinary autograd on these small tensors: gate by
gate (a controlled 2x2 mixes each row of the running product with the one row that differs in its target
bit), or by pairwise products of dense gate matrices when those are small (few circuits). Kept apart from
the stages that apply the unitaries, so that the same tables serve the cluster and the full-state stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hqdm.quantum.circuits import Gate

#: dense gate matrices (complex entries over all gates of a stack) up to which pass unitaries are built
#: by pairwise products instead of gate by gate
DENSE_GATE_ENTRIES = 1 << 16
#: the rotation axis of each parametrised gate's 2x2 block (index into ``_rotations``' stack)
ROTATION_AXIS = {"RX": 0, "CRX": 0, "RY": 1, "RZ": 2, "CRZ": 2}


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


def unitary_stacks(
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


def pass_unitaries(
    stacks: tuple[UnitaryStack, ...], n_passes: int, weights: torch.Tensor, dtype: torch.dtype
) -> list[torch.Tensor]:
    """The unitary per control value, (K, C, d, d), of each of ``n_passes`` passes in plan order, for
    weights (K, n_weights); ``stacks`` group the passes by shape.

    All passes of one shape are built together: gate by gate, each gate touching two entries per row, or,
    when the dense gate matrices are small (few circuits), by their pairwise products.
    """
    units: list[torch.Tensor] = [torch.empty(0)] * n_passes
    for stack in stacks:
        for i, u in zip(stack.members, _stack_unitaries(stack, weights, dtype).unbind(1), strict=True):
            units[i] = u
    return units


def _stack_unitaries(stack: UnitaryStack, weights: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(K, P, C, d, d) unitaries of the stack's passes."""
    device = weights.device
    idx = stack.weight_index.to(device)
    # index -1 (fixed gates, padding) reads an appended 0, which also serves circuits without weights
    angles = torch.cat([weights, weights.new_zeros(weights.shape[0], 1)], 1)[:, idx]
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


def adjoint(u: torch.Tensor) -> torch.Tensor:
    """A materialised conjugate transpose: a lazy ``.mH`` view makes complex bmm take a slow path."""
    return torch.conj_physical(u).transpose(-1, -2).contiguous()
