"""QPU cost accounting: circuit executions per forward / image / training step, checked against PennyLane's
own parameter-shift transform and against the models' known circuit counts."""

from __future__ import annotations

import pennylane as qml
import pytest
import torch

from hqdm.cli import main
from hqdm.models import build_model
from hqdm.models.qpu_cost import format_qpu_cost_table, measure_qpu_cost, shift_executions
from hqdm.quantum import to_pennylane
from hqdm.quantum.circuits import build_circuit, chen_circuit


@pytest.mark.parametrize(
    "circuit",
    [build_circuit("hqconv", 1), build_circuit("basic", 2), chen_circuit(4, 2, semantics="reference-code")],
    ids=["hqconv", "basic", "chen"],
)
def test_shift_executions_equal_pennylane_parameter_shift_tapes(circuit) -> None:
    """PennyLane's param_shift builds one tape per shifted execution; inputs and weights all trainable."""
    apply = to_pennylane(circuit)
    x = qml.numpy.array([0.3] * circuit.n_wires, requires_grad=True)
    w = qml.numpy.array([0.7] * circuit.n_weights, requires_grad=True)
    with qml.tape.QuantumTape() as tape:
        apply(x, w)
        for wire in range(circuit.n_wires):
            qml.expval(qml.PauliZ(wire))
    tape.trainable_params = list(range(len(tape.get_parameters(trainable_only=False))))
    tapes, _ = qml.gradients.param_shift(tape)
    assert shift_executions(circuit, weights_trained=True) == len(tapes)
    assert shift_executions(circuit, weights_trained=False) == 2 * circuit.n_wires  # encoding angles only


@pytest.mark.parametrize(
    ("name", "semantics", "per_forward", "per_sample"),
    [
        ("qvunet-1hq", "paper", 4, 4 * 361),  # 2 blocks x 2 stages; 84 CRX/CRZ x 4 + 12 RX x 2 + 1
        ("qvunet-1hq", "reference-code", 2, 2 * 73),  # stage 2 reuses stage 1; 12 live CRX/CRZ
        ("qvunet-7fq", "paper", 28, 28 * 313),  # 7 circuits; 72 CRX/CRZ x 4 + 24 + 1
        ("quanvunet", "paper", 4 + 4 * 49, 200 * 361),  # + 2 blocks x 2 quanvolutions x 7x7 patches
        ("lite-qunet-8q", "paper", 1, 1 + 8 * 2 + 24 * 2),  # 8 RY encodings, 3 x 8 RZ
        ("qvunet-1hq-frozen", "paper", 4, 4 * 25),  # frozen weights: encoding shifts only
    ],
)
def test_circuit_counts_of_models(name: str, semantics: str, per_forward: int, per_sample: int) -> None:
    torch.manual_seed(0)
    cost = measure_qpu_cost(name, build_model(name, semantics=semantics))
    assert (cost.per_forward, cost.per_training_sample) == (per_forward, per_sample)
    assert cost.per_image(50) == 50 * per_forward


def test_models_qpu_cost_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--qpu-cost", "--shots", "1024", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("qvunet-1hq "))
    # layers, forward at batch 8, DDIM-50, DDPM-1000, train step at batch 8, then x 1024 shots
    assert row[1:] == ["4", "32", "200", "4,000", "11,552", "204,800", "4,096,000", "11,829,248"]
    names = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert {"unet", "lite-unet", "qvunet-1hq-twin"}.isdisjoint(names) and "quanvunet" in names  # no circuits
    assert format_qpu_cost_table().splitlines()[0].split()[:3] == ["model", "circuit", "layers"]
