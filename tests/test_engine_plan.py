"""Plans (hqdm.quantum.engine.plan): where the cluster stage ends changes no value or gradient."""

from __future__ import annotations

import torch

from hqdm.quantum.circuits import build_circuit
from hqdm.quantum.engine import compile_circuit, simulate


def test_low_rank_stage_length_changes_nothing():
    """Plans that multiply the clusters out sooner or later (rank caps 1-64) give equal values and grads."""
    circuit = build_circuit("hqconv", 4)
    g = torch.Generator().manual_seed(11)
    x = torch.rand(2, 5, circuit.n_wires, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(2, circuit.n_weights, generator=g, dtype=torch.float64) * 6
    results, stages = [], set()
    for cap in (1, 2, 4, 8, 64):
        plan = compile_circuit(circuit, cap)
        stages.add(len(plan.parts[0].plan.cluster_passes))
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = simulate(plan, xx, ww, dtype=torch.complex128)
        results.append((out, *torch.autograd.grad(out.cos().sum(), [xx, ww])))
    assert len(stages) >= 3  # the cap really moves the switch to the full state
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.allclose(a, b, atol=1e-12, rtol=0)
