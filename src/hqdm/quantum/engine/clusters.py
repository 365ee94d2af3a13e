"""The cluster stage: passes on the small states of clusters of wire groups, and low-rank states.

The encoding is a product state. Until a pass entangles the last groups together, passes run on the small
states of the clusters of groups they touch (16 or 256 amplitudes per sample, ordinary autograd). A pass that
would join the last clusters through control wires is applied once per value of its outside controls
instead: the state becomes a short sum of products ``sum_r cluster_1[r] (x) cluster_2[r] ...`` (the control
cluster projected on each value), its rank multiplied by ``2**controls``. Past the plan's rank cap the
clusters are multiplied out (:func:`materialize`) for the full-state stage; otherwise
:mod:`~hqdm.quantum.engine.readout` reads ``<Z>`` from them directly.

Clusters are tensors (K, R, 2, ..., 2, N) with one axis per wire (ascending); einsum letters: z = circuit,
x = rank term, y = sample, a.. = wires (upper case: a block's output). The state is the sum over x of the
product of all clusters.
"""

from __future__ import annotations

import torch

from hqdm.quantum.engine.plan import ConnectedPlan, Pass


def encode(inputs: torch.Tensor, plan: ConnectedPlan, dtype: torch.dtype) -> list[torch.Tensor]:
    """RX(x)|0> = [cos, -i sin] or RY(x)|0> = [cos, sin] (of x/2) per wire: a list of (K, 1, 2, N) states
    (axis 1 is the rank of a cluster, see ``cluster_pass``)."""
    half = inputs.transpose(1, 2).to(dtype.to_real()) / 2
    c, s = torch.cos(half), torch.sin(half)
    zero = torch.zeros_like(c)
    one = torch.complex(zero, -s) if plan.encoding == "RX" else torch.complex(s, zero)
    qubits = torch.stack([torch.complex(c, zero), one], 2)
    return [qubits[:, None, w] for w in range(plan.n_wires)]


def _letters(wires) -> str:
    return "".join(chr(ord("a") + w) for w in wires)


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


def cluster_pass(p: Pass, u: torch.Tensor, clusters: dict[tuple[int, ...], torch.Tensor]) -> None:
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


def materialize(clusters: dict[tuple[int, ...], torch.Tensor], n_wires: int) -> torch.Tensor:
    """The full state (K, 2**n, N): the sum over rank terms of the product of all clusters."""
    parts, wires = list(clusters), tuple(range(n_wires))
    rank = next(iter(clusters.values())).shape[1]
    full = None
    for x in range(rank):  # term by term: never R full states at once
        term = _product({ws: clusters[ws][:, x : x + 1] for ws in parts}, parts, wires)
        full = term if full is None else full + term
    return full.reshape(full.shape[0], 1 << n_wires, full.shape[-1])
