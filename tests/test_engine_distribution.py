"""The engine's whole output distribution against PennyLane's ``qml.probs`` on hqdm's exported circuits,
through the cluster stage alone and with full-state passes (a low rank cap forces them)."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from hqdm.quantum import to_pennylane
from hqdm.quantum.circuits import Circuit, Gate, build_circuit, chen_circuit
from hqdm.quantum.engine import compile_circuit, output_distribution


def _moved_group_circuit() -> Circuit:
    """8 wires in a ring, then a pass on group (0-3) controlled from group (4-7): the full-state stage moves
    group 0 after group 1 in memory, so the final state must be put back in wire order."""
    ring = [Gate("CRX", (i, (i + 1) % 8), i) for i in range(8)]
    tail = [Gate("CRX", (5, 0), 8), Gate("CRZ", (6, 1), 9), Gate("RY", (2,), 10)]
    return Circuit(8, (*ring, *tail), 11, "moved-group")


CASES = [
    # (circuit, rank cap, whether it reaches the full-state stage): the registered ansatzes as compiled,
    # then with full-state passes forced by a rank cap of 1, then one whose last pass reorders memory
    pytest.param(build_circuit("hqconv", 1), 8, False, id="hqconv-1"),
    pytest.param(build_circuit("hqconv", 2), 1, True, id="hqconv-2-full-state"),
    pytest.param(build_circuit("basic", 2), 8, False, id="basic-2"),
    pytest.param(chen_circuit(6, 2, semantics="reference-code"), 8, False, id="chen-6-ry-cnot"),
    pytest.param(chen_circuit(10, 2), 1, True, id="chen-10-full-state"),
    pytest.param(_moved_group_circuit(), 8, True, id="moved-group"),
]


def pennylane_probs(circuit: Circuit, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    apply = to_pennylane(circuit)

    @qml.qnode(qml.device("default.qubit", wires=circuit.n_wires))
    def run(inputs, weights):
        apply(inputs, weights)
        return qml.probs(wires=range(circuit.n_wires))

    return np.stack([run(row, w) for row in x])


@pytest.mark.parametrize(("circuit", "rank_cap", "full_state"), CASES)
def test_output_distribution_matches_pennylane_probs(
    circuit: Circuit, rank_cap: int, full_state: bool
) -> None:
    plan = compile_circuit(circuit, rank_cap)
    assert len(plan.parts) == 1 and plan.order is None  # one connected circuit
    connected = plan.parts[0].plan
    assert bool(connected.passes) == full_state  # the case tests the stage its id names
    g = torch.Generator().manual_seed(circuit.n_weights)
    x = torch.rand(2, 3, circuit.n_wires, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(2, circuit.n_weights, generator=g, dtype=torch.float64) * 6
    ours = output_distribution(connected, x, w, dtype=torch.complex128)
    assert ours.shape == (2, 3, 1 << circuit.n_wires)
    for k in range(2):
        expected = pennylane_probs(circuit, x[k].numpy(), w[k].numpy())
        np.testing.assert_allclose(ours[k].numpy(), expected, atol=1e-10)


def test_chunks_and_threads_give_the_same_distribution() -> None:
    """Small chunks split the samples of one circuit across calls; the pieces land in their places."""
    circuit = build_circuit("hqconv", 2)
    connected = compile_circuit(circuit).parts[0].plan
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 7, 12, generator=g) * 6 - 3
    w = torch.rand(3, circuit.n_weights, generator=g) * 6
    whole = output_distribution(connected, x, w)
    chunked = output_distribution(connected, x, w, chunk_amplitudes=2 * 4096)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
