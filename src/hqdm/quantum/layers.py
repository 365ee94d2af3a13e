"""``torch.nn`` layers around the circuits: 2x2 patches of 3 channels through 12 qubits, quanvolution."""

from __future__ import annotations

import math

import torch
from torch import nn

from hqdm.quantum.circuits import ANGLES_PER_LAYER, ANSATZ_WIRES, build_circuit, check_ansatz
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.quantum.measured_layer import MeasuredLayer

WIRE_ORDERS = ("channel-major", "pixel-major")


class PatchCircuit(MeasuredLayer, nn.Module):
    """Maps (N, C, 2, 2) patches to ``<Z>`` of the circuit's wires, written back to the same positions.

    12-qubit ansatzes (``hqconv``, ``fqconv``) take C = 3 channels x 4 pixels per circuit; ``basic`` takes
    C = 1 channel (4 wires, pixels row-major). ``n_circuits`` > 1 holds that many independent circuits of the
    same ansatz and runs them in one simulator call: the input then has ``n_circuits`` times the channels and
    circuit i reads channel block i.

    ``wire_order``: ``"channel-major"`` (the paper: wires 0-3 = channel 0, row-major pixels) or
    ``"pixel-major"`` (the reference code: wire i holds pixel i // 3, channel i % 3).
    The circuit's angles are ``angle_scale * weights``; weights start uniform in [0, 2*pi / angle_scale), so
    angles start uniform in [0, 2*pi) either way (the reference code uses angle_scale = 2*pi).
    :meth:`measure` switches the readout from exact ``<Z>`` to finite shots and/or hardware noise.
    """

    def __init__(
        self,
        ansatz: str,
        n_layers: int,
        *,
        variant: str = "paper",
        wire_order: str = "channel-major",
        angle_scale: float = 1.0,
        n_circuits: int = 1,
        sim_dtype: torch.dtype = torch.complex64,
    ) -> None:
        super().__init__()
        check_ansatz(ansatz, variant)
        if wire_order not in WIRE_ORDERS:
            raise ValueError(f"unknown wire_order {wire_order!r}: choose one of {', '.join(WIRE_ORDERS)}")
        if n_circuits < 1:
            raise ValueError(f"n_circuits must be at least 1, got {n_circuits}")
        self.ansatz, self.variant, self.wire_order = ansatz, variant, wire_order
        self.n_layers, self.n_circuits, self.angle_scale = n_layers, n_circuits, float(angle_scale)
        self.sim_dtype = sim_dtype
        self.channels = ANSATZ_WIRES[ansatz] // 4
        self.definition = build_circuit(ansatz, n_layers, variant=variant)
        self.plan = compile_circuit(self.definition)
        self.measure(None)
        shape = (n_layers, ANGLES_PER_LAYER[ansatz])
        if n_circuits > 1:
            shape = (n_circuits, *shape)
        self.weights = nn.Parameter(torch.rand(shape) * (2 * math.pi / self.angle_scale))

    def _to_wires(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K*C, 2, 2) -> (K, N, 4*C) in the chosen wire order."""
        n = x.shape[0]
        x = x.reshape(n, self.n_circuits, self.channels, 4)
        if self.wire_order == "pixel-major":
            x = x.transpose(2, 3)
        return x.reshape(n, self.n_circuits, -1).transpose(0, 1)

    def _from_wires(self, z: torch.Tensor) -> torch.Tensor:
        k, n, _ = z.shape
        z = z.transpose(0, 1)
        if self.wire_order == "pixel-major":
            z = z.reshape(n, k, 4, self.channels).transpose(2, 3)
        return z.reshape(n, k * self.channels, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.n_circuits * self.channels
        if x.dim() != 4 or x.shape[1:] != (expected, 2, 2):
            raise ValueError(f"PatchCircuit expects (N, {expected}, 2, 2) patches, got {tuple(x.shape)}")
        weights = (self.weights * self.angle_scale).reshape(self.n_circuits, -1)
        if self.measurement is None:
            z = simulate(self.plan, self._to_wires(x), weights, dtype=self.sim_dtype)
        else:
            z = self.measured_expvals(self.definition, self._to_wires(x), weights, self.sim_dtype)
        return self._from_wires(z).to(torch.promote_types(x.dtype, z.dtype))  # float32 also for bf16 x

    def extra_repr(self) -> str:
        return (
            f"{self.ansatz}, layers={self.n_layers}, circuits={self.n_circuits}, variant={self.variant}, "
            f"wire_order={self.wire_order}, angle_scale={self.angle_scale:g}"
        )


class Quanvolution(nn.Module):
    """One circuit on every non-overlapping 2x2 patch (stride 2) of a (B, C, H, W) map; shape-preserving.

    All patches of all images go through the simulator in one batched call.
    """

    def __init__(self, ansatz: str, n_layers: int, **circuit_options) -> None:
        super().__init__()
        self.circuit = PatchCircuit(ansatz, n_layers, **circuit_options)

    @property
    def weights(self) -> nn.Parameter:
        return self.circuit.weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if c != self.circuit.channels * self.circuit.n_circuits or h % 2 or w % 2:
            raise ValueError(
                f"Quanvolution expects (B, {self.circuit.channels}, H, W) with even H and W, "
                f"got {tuple(x.shape)}"
            )
        patches = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, 2, 2)
        out = self.circuit(patches)
        return out.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
