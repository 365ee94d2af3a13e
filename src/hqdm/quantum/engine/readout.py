"""The low-rank readout: ``<Z>`` from the clusters' Gram matrices, never building the full state.

A 3-layer HQConv circuit ends the cluster stage as 4 terms of 16 + 256 amplitudes; its 4096-amplitude state
is never built. A last pass on one target wire changes only that wire's ``<Z>``: it is read out as an
observable on the state before it instead of applied (HQConv: rank 4, not 8). Both readouts have their
backward written out (:class:`GramReadout`, :class:`HermitianGram`), because autograd of the same products
copies the largest operands several times.
"""

from __future__ import annotations

from functools import cache

import torch
from torch.autograd.function import once_differentiable

from hqdm.quantum.engine.plan import ConnectedPlan, Pass
from hqdm.quantum.engine.unitaries import adjoint


def readout(plan: ConnectedPlan, clusters: dict[tuple[int, ...], torch.Tensor]) -> torch.Tensor:
    """<Z_i> (K, n_wires, N) from the clusters when no full-state pass is left, without the full state."""
    parts = list(clusters)
    flat = [clusters[ws].flatten(2, -2).permute(0, 3, 1, 2) for ws in parts]  # (K, N, R, 2**len(ws))
    signs = [cluster_signs(len(ws)).to(flat[0].device, flat[0].dtype.to_real()) for ws in parts]
    out = GramReadout.apply(signs, *flat)  # (K, N, wires of the clusters in order)
    order = [w for ws in parts for w in ws]
    return out[:, :, [order.index(w) for w in range(plan.n_wires)]].transpose(1, 2)


def _others(tensors: list[torch.Tensor], skip: set[int]) -> torch.Tensor | None:
    """Elementwise product of the tensors not in ``skip`` (None when there are none)."""
    result = None
    for i, t in enumerate(tensors):
        if i not in skip:
            result = t if result is None else result * t
    return result


class GramReadout(torch.autograd.Function):
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


def last_pass_expval(p: Pass, u: torch.Tensor, clusters: dict[tuple[int, ...], torch.Tensor]) -> torch.Tensor:
    """<Z_t> (K, N) after the one-target pass ``p`` (target t, unitaries ``u`` (K, C, 2, 2)), read on the
    clusters before it.

    The pass maps Z_t to ``sum_v Pi_v (x) O_v`` (``Pi_v`` projects its controls on value v,
    ``O_v = u_v^H Z u_v`` acts on t) and leaves every other Z alone, since its controls are diagonal. So the
    other wires are read without it, and a last pass that would factor doubles no rank. Each cluster gives
    ``M_c[v, r, s] = <T_c[s]| (c's part of Pi_v O_v) |T_c[r]>`` from its Gram matrix with the wires of that
    part left open; <Z_t> sums the product of the M_c over v and the rank terms r, s.
    """
    z = torch.tensor([1.0, -1.0], dtype=u.dtype, device=u.device)
    observables = adjoint(u) @ (z[:, None] * u)  # (K, V, 2, 2)
    total = None
    for wires, state in clusters.items():
        open_wires = [w for w in (p.block[0], *p.controls) if w in wires]
        n, o = len(wires), len(open_wires)
        rest = [w for w in wires if w not in open_wires]
        ket = state.permute(0, -1, 1, *[2 + wires.index(w) for w in (*open_wires, *rest)])
        ket = ket.reshape(*ket.shape[:2], ket.shape[2] << o, 1 << (n - o))  # (K, N, R * 2**o, rest)
        gram = HermitianGram.apply(ket)  # rows (r, a), columns (s, b)
        gram = gram.unflatten(-1, (-1, 1 << o)).unflatten(-3, (-1, 1 << o))  # (K, N, R, 2**o, R, 2**o)
        operator = _cluster_operator(p, open_wires, observables)  # (K, V, 2**o out b, 2**o in a)
        share = torch.einsum("zvba,zyrasb->zyvrs", operator, gram)
        total = share if total is None else total * share
    return total.sum((-3, -2, -1)).real


class HermitianGram(torch.autograd.Function):
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
        return (grad + adjoint(grad)) @ a


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
def cluster_signs(n: int) -> torch.Tensor:
    """(n, 2**n): eigenvalue of Z on wire position p (most significant first) of each basis state."""
    index = torch.arange(1 << n)
    return torch.stack([1.0 - 2.0 * ((index >> (n - 1 - p)) & 1) for p in range(n)]).to(torch.float64)
