"""The whole output distribution of a circuit, for drawing shots: the stages of
:func:`~hqdm.quantum.engine.simulate` without its ``<Z>`` readout.

Sampling bitstrings (:mod:`hqdm.quantum.measurement`) needs the probability of every basis state, which the
``<Z>`` path never forms. Here every cluster pass is applied (none is read out as an observable), the
clusters are always multiplied out into the full state, the full-state passes follow, and the squared
amplitudes are the distribution. The fused passes make this several times faster than applying the gates
one by one (docs/hardware.md). Forward only: shots have no gradient. Chunked over (circuit, sample) pairs
on the engine's threads like :func:`~hqdm.quantum.engine.simulate`.
"""

from __future__ import annotations

import torch

from hqdm.quantum.engine.clusters import cluster_pass, encode, materialize
from hqdm.quantum.engine.fullstate import final_state
from hqdm.quantum.engine.plan import ConnectedPlan
from hqdm.quantum.engine.run import CHUNK_AMPLITUDES
from hqdm.quantum.engine.threads import map_chunks, split_chunks


def output_distribution(
    plan: ConnectedPlan,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    *,
    dtype: torch.dtype = torch.complex64,
    chunk_amplitudes: int = CHUNK_AMPLITUDES,
) -> torch.Tensor:
    """(K, N, 2**n) basis-state probabilities (wire 0 the most significant bit) of K connected circuits of
    one structure: inputs (K, N, n_wires) encoding angles, weights (K, n_weights)."""
    k, n = inputs.shape[0], inputs.shape[1]
    real = dtype.to_real()
    units = plan.unitaries(weights.to(real), dtype)
    split = len(plan.cluster_passes)
    out = torch.empty(k, n, 1 << plan.n_wires, dtype=real, device=inputs.device)

    def run(chunk: tuple[slice, slice]) -> None:
        kc, nc = chunk
        clusters = {(w,): q for w, q in enumerate(encode(inputs[kc, nc].to(real), plan, dtype))}
        for p, u in zip(plan.cluster_passes, units[:split], strict=True):
            cluster_pass(p, u[kc], clusters)
        state = final_state(plan, materialize(clusters, plan.n_wires), [u[kc] for u in units[split:]])
        out[kc, nc] = (state.real.square() + state.imag.square()).transpose(1, 2)

    chunks = split_chunks(k, n, max(1, chunk_amplitudes >> plan.n_wires), torch.get_num_threads())
    with torch.no_grad():
        map_chunks(run, chunks)
    return out
