"""Write every circuit of a trained model as an OpenQASM 3 program, with a manifest that says which layer
it belongs to, which input feeds each wire, and what ``<Z_i>`` hqdm computes for an example input (so a
run on a simulator or a QPU can be checked against it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hqdm.files import atomic_write_text
from hqdm.models.measurement import quantum_layers
from hqdm.quantum.circuit_layer import CircuitLayer
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.quantum.layers import PatchCircuit
from hqdm.quantum.qasm import to_openqasm

MANIFEST = "circuits.json"
EXAMPLE_SEED = 0


def _wire_inputs(layer: nn.Module, index: int) -> str:
    """Which value of the layer's input each wire's encoding angle x_w is."""
    if isinstance(layer, PatchCircuit):
        first = index * layer.channels
        if layer.wire_order == "channel-major":
            return (
                f"x_w = channel {first} + w // 4 at pixel w % 4 (row-major) of the 2x2 patch, "
                f"of the layer's input (channels {first}..{first + layer.channels - 1} are this circuit's)"
            )
        return f"x_w = pixel w // {layer.channels} (row-major) of channel {first} + w % {layer.channels}"
    return "x_w = component w of the linear projection of the bottleneck's channel means"


def _circuit_angles(layer: nn.Module) -> torch.Tensor:
    """(circuits, n_weights) trained angles in radians, as the layer feeds them to its circuit."""
    if isinstance(layer, CircuitLayer):
        return layer.circuit_angles().detach()
    raise TypeError(f"no QASM export for {type(layer).__name__}")


def export_circuits(model: nn.Module, out_dir: str | Path, *, source: str = "") -> Path:
    """One ``<layer>.<k>.qasm`` per circuit of ``model`` in ``out_dir``, and ``circuits.json``; returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    gen = torch.Generator().manual_seed(EXAMPLE_SEED)
    for name, layer in quantum_layers(model):
        circuit = layer.definition
        for index, angles in enumerate(_circuit_angles(layer).double().cpu()):
            file = f"{name}.{index}.qasm"
            inputs = (torch.rand(circuit.n_wires, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
            expected = simulate(
                compile_circuit(circuit), inputs[None, None], angles[None], dtype=torch.complex128
            )
            header = (
                f"hqdm {circuit.name}: circuit {index} of layer {name}{f' of {source}' if source else ''}"
            )
            atomic_write_text(out / file, to_openqasm(circuit, angles, comment=header))
            entries.append({
                "file": file, "layer": name, "circuit_index": index, "circuit": circuit.name,
                "n_wires": circuit.n_wires, "inputs": _wire_inputs(layer, index),
                "example_inputs": inputs.tolist(), "expected_expvals": expected[0, 0].tolist(),
            })  # fmt: skip
    manifest = {
        "source": source,
        "format": "OpenQASM 3.0; inputs x_0..x_{n-1} are the encoding angles (radians); wire i is q[i]; "
        "<Z_i> = 1 - 2 P(c[i] = 1)",
        "circuits": entries,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return out / MANIFEST
