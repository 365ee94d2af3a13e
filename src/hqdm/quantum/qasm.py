"""OpenQASM 3 programs of hqdm circuits with trained angles, for submission to a hardware provider.

The program replays the same gate list as the PennyLane export (:func:`hqdm.quantum.to_pennylane`): the
encoding rotations read ``input float[64] x_0 .. x_{n-1}`` (bound per execution, so one program serves every
patch or image), the trained angles are written out in full precision, and every wire is measured into
``c``. Wire ``i`` is ``q[i]``. PennyLane's loader (``qml.from_qasm3``, 0.45) has the standard gates built in,
rejects ``include`` lines and turns the final measurement into mid-circuit measurements:
:func:`pennylane_loadable` drops both lines, so that its QNode can return ``qml.expval(qml.PauliZ("q[i]"))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hqdm.quantum.circuits import Circuit

INCLUDE = 'include "stdgates.inc";'
MEASURE = "c = measure q;"
QASM_GATES = {"RX": "rx", "RY": "ry", "RZ": "rz", "CRX": "crx", "CRZ": "crz", "CNOT": "cx"}


def to_openqasm(
    circuit: Circuit,
    weights: torch.Tensor | Sequence[float],
    *,
    comment: str = "",
) -> str:
    """The OpenQASM 3 text of ``circuit`` with its ``n_weights`` angles ``weights`` (radians, flat)."""
    angles = [float(a) for a in torch.as_tensor(weights, dtype=torch.float64).flatten()]
    if len(angles) != circuit.n_weights:
        raise ValueError(f"{circuit.name or 'the circuit'} has {circuit.n_weights} angles, got {len(angles)}")
    n = circuit.n_wires
    lines = ["OPENQASM 3.0;", INCLUDE]
    lines += [f"// {line}" for line in comment.splitlines()]
    lines += [f"input float[64] x_{w};" for w in range(n)]
    lines += [f"qubit[{n}] q;", f"bit[{n}] c;"]
    lines += [f"{QASM_GATES[gate.name]}(x_{gate.input}) q[{gate.target}];" for gate in circuit.encoding_gates]
    for gate in circuit.gates:
        wires = ", ".join(f"q[{w}]" for w in gate.wires)
        angle = "" if gate.weight is None else f"({angles[gate.weight]!r})"
        lines.append(f"{QASM_GATES[gate.name]}{angle} {wires};")
    lines.append(MEASURE)
    return "\n".join(lines) + "\n"


def pennylane_loadable(program: str) -> str:
    """``program`` without its include and final measurement lines, for ``qml.from_qasm3``."""
    return "".join(
        line for line in program.splitlines(keepends=True) if line.strip() not in (INCLUDE, MEASURE)
    )
