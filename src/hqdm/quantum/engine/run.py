""":func:`simulate`: a compiled plan, inputs and weights through the stages to ``<Z>``.

Per connected part: the pass unitaries (:mod:`~hqdm.quantum.engine.unitaries`) once per call, then per
chunk of (circuit, sample) pairs on the engine's threads (:mod:`~hqdm.quantum.engine.threads`) the encoding,
the cluster stage (:mod:`~hqdm.quantum.engine.clusters`) and either the low-rank readout
(:mod:`~hqdm.quantum.engine.readout`) or the full-state stage (:mod:`~hqdm.quantum.engine.fullstate`).
"""

from __future__ import annotations

import torch

from hqdm.quantum.engine.clusters import cluster_pass, encode, materialize
from hqdm.quantum.engine.fullstate import FullStateExpvals
from hqdm.quantum.engine.plan import ConnectedPlan, Plan
from hqdm.quantum.engine.readout import last_pass_expval, readout
from hqdm.quantum.engine.threads import ThreadedChunks, gather, map_chunks, split_chunks

#: amplitudes per chunk of the batch (complex64: 4 MiB)
CHUNK_AMPLITUDES = 1 << 19
#: (circuit, sample) pairs per call of the cluster stage, at least (more for small circuits)
SAMPLE_CHUNK = 512


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
    units = plan.unitaries(real_weights, dtype)
    split = len(plan.cluster_passes)

    def work(chunk: tuple[slice, slice], tensors: list[torch.Tensor]) -> torch.Tensor:
        (kc, nc), (x, *us) = chunk, tensors
        cluster_units, full_units = [u[kc] for u in us[:split]], [u[kc] for u in us[split:]]
        return _simulate_chunk(plan, x[kc, nc], cluster_units, full_units, dtype, chunk_amplitudes)

    # the cluster stage is many small ops that parallelise poorly inside one op: run it on cache-sized
    # (circuit, sample) chunks, one chunk per thread
    chunks = split_chunks(k, n, sample_chunk, torch.get_num_threads())
    tensors = [inputs, *units]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return ThreadedChunks.apply(work, chunks, *tensors)
    return gather(chunks, map_chunks(lambda c: work(c, tensors), chunks), inputs)


def _simulate_chunk(
    plan: ConnectedPlan,
    inputs: torch.Tensor,
    cluster_units: list[torch.Tensor],
    full_units: list[torch.Tensor],
    dtype: torch.dtype,
    chunk_amplitudes: int,
) -> torch.Tensor:
    """:func:`simulate` on one chunk, given the pass unitaries of its circuits: (K', N', n_wires)."""
    clusters = {(w,): q for w, q in enumerate(encode(inputs, plan, dtype))}
    applied = len(plan.cluster_passes) - plan.reads_last_pass
    for p, u in zip(plan.cluster_passes[:applied], cluster_units[:applied], strict=True):
        cluster_pass(p, u, clusters)
    if plan.passes:
        full = materialize(clusters, plan.n_wires)
        out = FullStateExpvals.apply(plan, chunk_amplitudes, full, *full_units)
    else:
        out = readout(plan, clusters)
    if plan.reads_last_pass:
        t = plan.cluster_passes[-1].block[0]
        z_t = last_pass_expval(plan.cluster_passes[-1], cluster_units[-1], clusters)
        out = torch.cat([out[:, :t], z_t[:, None], out[:, t + 1 :]], dim=1)
    return out.transpose(1, 2)
