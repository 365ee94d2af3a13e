"""OpenQASM 3 export: PennyLane's QASM loader reads back the same circuit, with the same <Z_i>."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pennylane as qml
import pytest
import torch

from hqdm.models import build_model
from hqdm.models.qasm_export import export_circuits
from hqdm.quantum import to_pennylane
from hqdm.quantum.circuits import Circuit, build_circuit, chen_circuit
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.quantum.qasm import pennylane_loadable, to_openqasm

pytest.importorskip("openqasm3", reason="PennyLane's QASM 3 loader needs openqasm3[parser]")


def reimported(program: str, n_wires: int):
    """A default.qubit QNode that runs the QASM program through PennyLane's loader (which names the wires
    after the register: q[0], q[1], ...) and returns <Z> of every wire."""
    labels = [f"q[{w}]" for w in range(n_wires)]
    text = pennylane_loadable(program)

    @qml.qnode(qml.device("default.qubit", wires=labels))
    def run(x: np.ndarray):
        qml.from_qasm3(text)(**{f"x_{w}": float(x[w]) for w in range(n_wires)})
        return [qml.expval(qml.PauliZ(label)) for label in labels]

    return run


@pytest.mark.parametrize(
    "circuit",
    [
        build_circuit("hqconv", 2),
        build_circuit("hqconv", 2, semantics="reference-code"),
        build_circuit("fqconv", 2),
        build_circuit("basic", 2),
        chen_circuit(5, 2, semantics="reference-code"),
    ],
    ids=lambda c: c.name,
)
def test_qasm_round_trip_gives_the_same_circuit_and_expectations(circuit: Circuit) -> None:
    g = torch.Generator().manual_seed(circuit.n_weights)
    w = torch.rand(circuit.n_weights, generator=g, dtype=torch.float64) * 6
    x = torch.rand(2, circuit.n_wires, generator=g, dtype=torch.float64) * 6 - 3
    text = to_openqasm(circuit, w)
    run = reimported(text, circuit.n_wires)
    ours = simulate(compile_circuit(circuit), x[None], w[None], dtype=torch.complex128)[0].numpy()
    for row in range(2):
        np.testing.assert_allclose(np.array(run(x[row].numpy())), ours[row], atol=1e-10, rtol=0)
    # the very operations of the PennyLane export, in order, with identical angles
    loaded = qml.tape.make_qscript(qml.from_qasm3(pennylane_loadable(text)))(
        **{f"x_{i}": v for i, v in enumerate(x[0].tolist())}
    )
    exported = qml.tape.make_qscript(to_pennylane(circuit))(x[0].numpy(), w.numpy())
    assert [op.name for op in loaded.operations] == [op.name for op in exported.operations]
    assert [[int(str(label)[2:-1]) for label in op.wires] for op in loaded.operations] == [
        op.wires.tolist() for op in exported.operations
    ]
    for a, b in zip(loaded.operations, exported.operations, strict=True):
        np.testing.assert_array_equal(
            np.array(a.parameters, dtype=float), np.array(b.parameters, dtype=float)
        )


def test_providers_get_the_standard_include_and_wrong_angle_counts_are_refused() -> None:
    circuit = build_circuit("basic", 1)
    text = to_openqasm(circuit, [0.1, 0.2, 0.3, 0.4], comment="two\nlines")
    assert text.splitlines()[:4] == ["OPENQASM 3.0;", 'include "stdgates.inc";', "// two", "// lines"]
    assert text.rstrip().endswith("c = measure q;")
    with pytest.raises(ValueError, match="4 angles, got 3"):
        to_openqasm(circuit, [0.1, 0.2, 0.3])


def test_a_model_exports_every_circuit_with_checkable_expectations(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model("qvunet-7fq", semantics="reference-code")
    manifest = json.loads(export_circuits(model, tmp_path, source="test").read_text())
    entries = manifest["circuits"]
    assert len(entries) == 4 * 7 and len(list(tmp_path.glob("*.qasm"))) == 28  # 2 blocks x 2 banks x 7
    assert entries[8]["file"] == "mid.res0.circuits_2.1.qasm" and "pixel w // 3" in entries[8]["inputs"]
    for entry in entries[::27]:  # the first and the last
        got = reimported((tmp_path / entry["file"]).read_text(), entry["n_wires"])(
            np.array(entry["example_inputs"])
        )
        np.testing.assert_allclose(np.array(got), entry["expected_expvals"], atol=1e-10, rtol=0)
    bank = model.mid.res1.circuits_2
    weights = (bank.weights[6].detach() * bank.angle_scale).double()  # the angles the layer computes
    last = (tmp_path / entries[-1]["file"]).read_text()
    assert f"({float(weights[0, 0])!r})" in last  # trained angles, at full precision
