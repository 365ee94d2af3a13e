"""Ansatzes by registry and the circuit-layer core: a newly registered ansatz works by name everywhere, and
a Circuit works wherever a name does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from hqdm.quantum import Gate, PatchCircuit, Quanvolution, build_circuit, expvals, register_ansatz
from hqdm.quantum.circuits import ANGLES_PER_LAYER, ANSATZ_REGISTRY, ANSATZ_WIRES, ANSATZES
from hqdm.registry import UnknownNameError


def _ring_layer(offset: int, n_wires: int, semantics: str) -> list[Gate]:
    """An RY per wire, then CRZ couplings around the ring."""
    gates = [Gate("RY", (w,), offset + w) for w in range(n_wires)]
    return gates + [Gate("CRZ", (w, (w + 1) % n_wires), offset + n_wires + w) for w in range(n_wires)]


@pytest.fixture
def ring() -> Iterator[str]:
    """The toy ansatz "ring" registered for one test, then removed so other tests see the usual registry."""
    register_ansatz("ring", wires=4, angles_per_layer=8)(_ring_layer)
    try:
        yield "ring"
    finally:
        del ANSATZ_REGISTRY["ring"]


def test_a_registered_ansatz_appears_in_every_derived_table(ring):
    assert "ring" in ANSATZES
    assert ANSATZ_WIRES["ring"] == 4 and ANGLES_PER_LAYER["ring"] == 8
    circuit = build_circuit(ring, 3)
    assert (circuit.n_wires, circuit.n_weights, len(circuit.gates)) == (4, 24, 24)
    assert circuit.gates[8] == Gate("RY", (0,), 8)  # the second layer's angles start at 8


def test_a_registered_ansatz_runs_in_expvals_and_the_layers(ring):
    torch.manual_seed(0)
    layer = PatchCircuit(ring, 2, sim_dtype=torch.complex128).double()
    assert layer.weights.shape == (2, 8)
    x = torch.randn(5, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    z = expvals(ring, x.reshape(5, 4), layer.weights, dtype=torch.complex128)
    assert torch.allclose(out.reshape(5, 4), z, atol=1e-12)
    out.sum().backward()
    assert layer.weights.grad is not None and layer.weights.grad.abs().sum() > 0
    assert Quanvolution(ring, 1)(torch.randn(2, 1, 4, 4)).shape == (2, 1, 4, 4)


def test_registering_a_name_twice_is_refused(ring):
    with pytest.raises(ValueError, match="already registered"):
        register_ansatz(ring, wires=4, angles_per_layer=8)(_ring_layer)


def test_a_circuit_works_where_a_name_does():
    torch.manual_seed(1)
    named = PatchCircuit("hqconv", 2, sim_dtype=torch.complex128).double()
    circuit = build_circuit("hqconv", 2)
    direct = PatchCircuit(circuit, sim_dtype=torch.complex128).double()
    assert direct.weights.shape == (circuit.n_weights,)
    with torch.no_grad():
        direct.weights.copy_(named.weights.flatten())
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    assert torch.allclose(direct(x), named(x), atol=1e-12, rtol=0)
    flat = expvals(circuit, x.reshape(4, 12), named.weights.flatten(), dtype=torch.complex128)
    assert torch.allclose(flat, expvals("hqconv", x.reshape(4, 12), named.weights, dtype=torch.complex128))


def test_bad_names_and_shapes_are_refused():
    circuit = build_circuit("basic", 1)
    with pytest.raises(
        UnknownNameError, match="unknown ansatz 'hqconv2'; choose one of hqconv, fqconv, basic"
    ):
        PatchCircuit("hqconv2", 1)
    with pytest.raises(ValueError, match="n_layers is required"):
        PatchCircuit("hqconv")
    with pytest.raises(ValueError, match="n_layers is given by the Circuit"):
        PatchCircuit(circuit, 1)
    with pytest.raises(ValueError, match="4 angles"):
        expvals(circuit, torch.zeros(2, 4), torch.zeros(5))
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        expvals(circuit, torch.zeros(2, 12), torch.zeros(4))


def test_a_hybrid_block_takes_only_twelve_qubit_ansatzes():
    from hqdm.models.hybrid import QResnetBlock

    with pytest.raises(
        UnknownNameError, match="unknown 12-qubit ansatz 'basic'; choose one of hqconv, fqconv"
    ):
        QResnetBlock(8, 16, n_circuits=1, ansatz="basic")
