"""Pass unitaries (hqdm.quantum.engine.unitaries): both ways of building them agree."""

from __future__ import annotations

import pytest
import torch

from hqdm.quantum.circuits import build_circuit
from hqdm.quantum.engine import compile_circuit, unitaries


@pytest.mark.parametrize(
    ("ansatz", "semantics", "layers"),
    [("hqconv", "paper", 3), ("hqconv", "reference-code", 2), ("fqconv", "paper", 2), ("basic", "paper", 3)],
)
def test_pass_unitaries_gate_by_gate_equal_pairwise_products(monkeypatch, ansatz, semantics, layers):
    """Both ways of building pass unitaries (chosen by size) give the same unitaries and gradients."""
    circuit = build_circuit(ansatz, layers, semantics=semantics)
    g = torch.Generator().manual_seed(6)
    weights = torch.rand(3, circuit.n_weights, generator=g, dtype=torch.float64) * 6
    results = []
    for limit in (0, 1 << 40):
        monkeypatch.setattr(unitaries, "DENSE_GATE_ENTRIES", limit)
        for part in compile_circuit(circuit).parts:
            w = weights[:, part.weights[0]].clone().requires_grad_()
            units = part.plan.unitaries(w, torch.complex128)
            if not units:  # bare wires
                continue
            probes = [
                torch.randn(u.shape, generator=torch.Generator().manual_seed(i), dtype=u.dtype)
                for i, u in enumerate(units)
            ]
            loss = sum((u * p).real.sum() for u, p in zip(units, probes, strict=True))
            results.append([*units, torch.autograd.grad(loss, w)[0]])
    half = len(results) // 2
    for gate_by_gate, pairwise in zip(results[:half], results[half:], strict=True):
        for a, b in zip(gate_by_gate, pairwise, strict=True):
            assert torch.allclose(a, b, atol=1e-12, rtol=0)
