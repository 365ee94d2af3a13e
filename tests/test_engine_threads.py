"""Chunks and threads (hqdm.quantum.engine.threads): chunking changes no value or gradient, chunks cover
every pair once in even shares, worker threads are kept."""

from __future__ import annotations

import threading

import pytest
import torch

from hqdm.quantum.circuits import build_circuit
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.quantum.engine.threads import map_chunks, split_chunks


@pytest.mark.parametrize(("ansatz", "layers"), [("hqconv", 3), ("hqconv", 5), ("fqconv", 3)])
def test_chunked_and_threaded_simulation_equals_one_chunk(ansatz, layers):
    """Many small chunks (on a thread pool when torch has several threads) give the same values and grads."""
    plan = compile_circuit(build_circuit(ansatz, layers))
    if layers == 5:  # past the rank cap: the full-state stage and its chunks are exercised
        assert plan.parts[0].plan.passes
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 10, 12, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(3, plan.n_weights, generator=g, dtype=torch.float64) * 6
    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # one chunk; two samples of one circuit per full-state chunk and 3 per cluster-stage call
        for chunk, samples in ((1 << 20, 1 << 20), (1 << 13, 3)):
            xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
            out = simulate(plan, xx, ww, dtype=torch.complex128, chunk_amplitudes=chunk, sample_chunk=samples)
            results.append((out, *torch.autograd.grad(out.sin().sum(), [xx, ww])))
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_simulator_threads_are_kept_between_calls():
    """Chunks run on the same worker threads call after call (not new threads, each with a cold heap)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:  # the Thread objects themselves: kept alive here, so a new thread cannot pass for an old one
        seen = [t for _ in range(5) for t in map_chunks(lambda _: threading.current_thread(), range(4))]
    finally:
        torch.set_num_threads(threads)
    workers = list({id(t): t for t in seen}.values())
    assert 1 <= len(workers) <= 2
    assert all(t is not threading.main_thread() and t.name.startswith("hqdm-simulator") for t in workers)


@pytest.mark.parametrize(
    ("k", "n", "pairs", "threads", "expected"),
    [
        (13, 128, 512, 2, [3 * 128, 3 * 128, 3 * 128, 4 * 128]),  # whole circuits, not 4 + 4 + 4 + 1
        (7, 128, 512, 2, [3 * 128, 4 * 128]),
        (1, 128, 512, 2, [64, 64]),  # one circuit: its samples split over the threads
        (1, 6272, 512, 2, [448] * 14),  # not 12 x 512 + 128
        (3, 10, 3, 2, [3, 3, 3, 1] * 3),
    ],
)
def test_cluster_chunks_cover_every_pair_once_in_even_shares(k, n, pairs, threads, expected):
    chunks = split_chunks(k, n, pairs, threads)
    covered = torch.zeros(k, n, dtype=torch.long)
    for kc, nc in chunks:
        covered[kc, nc] += 1
    assert bool((covered == 1).all())
    assert [covered[kc, nc].numel() for kc, nc in chunks] == expected
