"""``torch.nn`` layers around the circuits: 2x2 patches of 3 channels through 12 qubits, quanvolution."""

from __future__ import annotations

import math

import torch
from torch import nn

from hqdm.quantum.circuit_layer import CircuitLayer
from hqdm.quantum.circuits import Circuit, build_circuit, check_ansatz

WIRE_ORDERS = ("channel-major", "pixel-major")


class PatchCircuit(CircuitLayer):
    """Maps (N, C, 2, 2) patches to ``<Z>`` of the circuit's wires, written back to the same positions.

    ``ansatz`` is a registered name (``n_layers`` layers of it, weights (n_layers, angles_per_layer)) or a
    :class:`~hqdm.quantum.circuits.Circuit` on a multiple of 4 wires (weights (n_weights,); ``n_layers`` and
    ``semantics`` are then not used). 12-qubit ansatzes (``hqconv``, ``fqconv``) take C = 3 channels x 4
    pixels per circuit; ``basic`` takes C = 1 channel (4 wires, pixels row-major). ``n_circuits`` > 1 holds
    that many independent circuits of the same ansatz and runs them in one simulator call: the input then
    has ``n_circuits`` times the channels and circuit i reads channel block i.

    ``wire_order``: ``"channel-major"`` (the paper: wires 0-3 = channel 0, row-major pixels) or
    ``"pixel-major"`` (the reference code: wire i holds pixel i // 3, channel i % 3).
    The circuit's angles are ``angle_scale * weights``; weights start uniform in [0, 2*pi / angle_scale), so
    angles start uniform in [0, 2*pi) either way (the reference code uses angle_scale = 2*pi).
    :meth:`measure` switches the readout from exact ``<Z>`` to finite shots and/or hardware noise.
    """

    def __init__(
        self,
        ansatz: str | Circuit,
        n_layers: int | None = None,
        *,
        semantics: str = "paper",
        wire_order: str = "channel-major",
        angle_scale: float = 1.0,
        n_circuits: int = 1,
        sim_dtype: torch.dtype = torch.complex64,
    ) -> None:
        circuit, shape = _circuit_and_weight_shape(ansatz, n_layers, semantics)
        if wire_order not in WIRE_ORDERS:
            raise ValueError(f"unknown wire_order {wire_order!r}: choose one of {', '.join(WIRE_ORDERS)}")
        if n_circuits < 1:
            raise ValueError(f"n_circuits must be at least 1, got {n_circuits}")
        if n_circuits > 1:
            shape = (n_circuits, *shape)
        angle_scale = float(angle_scale)
        super().__init__(circuit, torch.rand(shape) * (2 * math.pi / angle_scale), sim_dtype=sim_dtype)
        self.ansatz = ansatz if isinstance(ansatz, str) else circuit.name
        self.semantics, self.wire_order = semantics, wire_order
        self.n_layers, self.n_circuits, self.angle_scale = n_layers, n_circuits, angle_scale
        self.channels = circuit.n_wires // 4

    def circuit_angles(self) -> torch.Tensor:
        return (self.weights * self.angle_scale).reshape(self.n_circuits, -1)

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
        z = self.expvals(self._to_wires(x))
        return self._from_wires(z).to(torch.promote_types(x.dtype, z.dtype))  # float32 also for bf16 x

    def extra_repr(self) -> str:
        # layers and semantics only describe a circuit built from a name; a Circuit's name says the rest
        built = f", layers={self.n_layers}" if self.n_layers is not None else ""
        semantics = f", semantics={self.semantics}" if self.n_layers is not None else ""
        return (
            f"{self.ansatz}{built}, circuits={self.n_circuits}{semantics}, "
            f"wire_order={self.wire_order}, angle_scale={self.angle_scale:g}"
        )


def _circuit_and_weight_shape(
    ansatz: str | Circuit, n_layers: int | None, semantics: str
) -> tuple[Circuit, tuple[int, ...]]:
    """The circuit of a patch layer and the shape of one circuit's weights."""
    if isinstance(ansatz, Circuit):
        if n_layers is not None:
            raise ValueError(
                "n_layers is given by the Circuit itself; pass n_layers only with an ansatz name"
            )
        if ansatz.n_wires % 4:
            raise ValueError(f"a patch circuit needs 4 wires per channel, got {ansatz.n_wires} wires")
        return ansatz, (ansatz.n_weights,)
    entry = check_ansatz(ansatz, semantics)
    if n_layers is None:
        raise ValueError("n_layers is required when the ansatz is given by name")
    return build_circuit(ansatz, n_layers, semantics=semantics), (n_layers, entry.angles_per_layer)


class Quanvolution(nn.Module):
    """One circuit on every non-overlapping 2x2 patch (stride 2) of a (B, C, H, W) map; shape-preserving.

    All patches of all images go through the simulator in one batched call.
    """

    def __init__(self, ansatz: str | Circuit, n_layers: int | None = None, **circuit_options) -> None:
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
