"""Chunks of (circuit, sample) pairs on a kept thread pool, forward and backward.

Both stages are many small ops that parallelise poorly inside one op, so whole cache-sized chunks run in
parallel instead, one per thread (torch releases the GIL inside its kernels). The cluster stage gives each
chunk its own autograd graph (:class:`ThreadedChunks`) so that its backward is parallel too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import pairwise

import torch


def split_chunks(k: int, n: int, pairs: int, threads: int) -> list[tuple[slice, slice]]:
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


def map_chunks(work, chunks: list) -> list:
    """Run ``work(chunk)`` over chunks on all intra-op threads, one torch thread per chunk.

    The passes are many small GEMMs that parallelise poorly inside one op; whole chunks in parallel keep
    each core on its own cache-sized state. torch releases the GIL inside its kernels.
    """
    threads = torch.get_num_threads()
    if threads == 1 or len(chunks) == 1:
        return [work(c) for c in chunks]

    # grad mode is per thread and off by default here; work that builds a graph (``ThreadedChunks``)
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


def gather(
    chunks: list[tuple[slice, slice]], parts: list[torch.Tensor], inputs: torch.Tensor
) -> torch.Tensor:
    """The chunks' (K', N', n_wires) results in one (K, N, n_wires) tensor, for inputs (K, N, n_wires)."""
    out = parts[0].new_empty(inputs.shape)
    for (kc, nc), part in zip(chunks, parts, strict=True):
        out[kc, nc] = part
    return out


class ThreadedChunks(torch.autograd.Function):
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

        ctx.graphs, ctx.chunks = map_chunks(run, chunks), chunks
        return gather(chunks, [result.detach() for _, result in ctx.graphs], tensors[0])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        def run(index: int) -> list[torch.Tensor | None]:
            (kc, nc), (leaves, result) = ctx.chunks[index], ctx.graphs[index]
            wanted = [leaf for leaf in leaves if leaf.requires_grad]
            grads = iter(torch.autograd.grad(result, wanted, grad_out[kc, nc], allow_unused=True))
            return [next(grads) if leaf.requires_grad else None for leaf in leaves]

        totals: list[torch.Tensor | None] = [None] * len(ctx.graphs[0][0])
        for grads in map_chunks(run, list(range(len(ctx.chunks)))):
            for i, g in enumerate(grads):
                if g is not None:
                    totals[i] = g if totals[i] is None else totals[i] + g
        ctx.graphs = None
        return (None, None, *totals)
