"""The full-state stage: passes on the whole state vector with an adjoint (uncompute) backward.

Deeper circuits (past the plan's rank cap) continue here on the full state. The state is batch-last,
``(circuits, 2**n, samples)``, so each pass is a few large GEMMs; passes whose control wires lie after their
group in memory first move that group to the end (one copy). Only the final states are kept: the backward
walks the passes in reverse, un-applying each unitary to recover its input state, so memory does not grow
with circuit depth. The batch is processed in cache-sized chunks on the engine's threads
(:mod:`~hqdm.quantum.engine.threads`).
"""

from __future__ import annotations

from functools import cache

import torch

from hqdm.quantum.engine.plan import ConnectedPlan, Pass
from hqdm.quantum.engine.readout import cluster_signs
from hqdm.quantum.engine.threads import map_chunks, split_chunks
from hqdm.quantum.engine.unitaries import adjoint


class FullStateExpvals(torch.autograd.Function):
    """<Z> of every wire after the full-state passes, with an adjoint (uncompute) backward."""

    @staticmethod
    def forward(
        ctx, plan: ConnectedPlan, chunk_amplitudes: int, initial: torch.Tensor, *unitaries: torch.Tensor
    ):
        k, _, n = initial.shape
        views = [_broadcast(u, p) for u, p in zip(unitaries, plan.passes, strict=True)]
        signs = _z_signs(plan, plan.passes[-1].layout).to(initial.real)
        out = signs.new_empty(k, plan.n_wires, n)
        chunks = split_chunks(k, n, max(1, chunk_amplitudes >> plan.n_wires), torch.get_num_threads())

        def run(chunk: tuple[slice, slice]) -> torch.Tensor:
            kc, nc = chunk
            final = _forward_chunk(plan, views, initial[kc, :, nc].contiguous(), kc)
            out[kc, :, nc] = signs @ (final.real.square() + final.imag.square())
            return final

        ctx.finals = map_chunks(run, chunks)
        ctx.plan, ctx.chunks, ctx.views = plan, chunks, views
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        plan: ConnectedPlan = ctx.plan
        adjoints = [adjoint(v) for v in ctx.views]
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
        for kc, grads in map_chunks(run, list(range(len(ctx.chunks)))):
            for total, part in zip(unitary_grads, grads, strict=True):
                total[kc] += part
        ctx.finals = None
        # torch's convention for complex inputs: the gradient is 2 dL/d(conj z) for a real loss
        results = [2 * _unbroadcast(g, p) for g, p in zip(unitary_grads, plan.passes, strict=True)]
        return (None, None, initial_grad, *results)


def final_state(plan: ConnectedPlan, initial: torch.Tensor, unitaries: list[torch.Tensor]) -> torch.Tensor:
    """Forward only: the passes on ``initial`` (K, 2**n, N) given their unitaries (K, C, d, d); the final
    state back in wire order (wire 0 the most significant bit)."""
    if not plan.passes:
        return initial
    views = [_broadcast(u, p) for u, p in zip(unitaries, plan.passes, strict=True)]
    final = _forward_chunk(plan, views, initial, slice(None))
    return _relayout(plan, final[None], plan.passes[-1].layout, tuple(range(len(plan.groups))))[0]


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
    signs[wires] = cluster_signs(len(wires))  # row of memory position p -> row of the wire stored there
    return signs
