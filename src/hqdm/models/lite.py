"""Chen et al. (2025): a lightweight denoising U-Net, optionally with a quantum layer in its bottleneck.

Encoder: three 3x3 convolutions (28 -> 28 -> 14 -> 7 pixels, 32/64/128 channels), the time embedding
added at 7x7, a residual bottleneck. ``lite-qunet`` then re-weights the bottleneck's channels with a
quantum gate: channel means -> linear -> one angle per qubit -> RY-encoded circuit (``chen_circuit``) ->
``<Z>`` per qubit -> linear -> ``2 sigmoid`` per channel (1 = unchanged). Decoder: two stride-2
transposed convolutions back to 28x28, an additive skip at 14x14 and a concatenated skip at 28x28.

Unlike the authors' code, the circuit runs batched through the hqdm engine and its input is not
detached, so the encoder and the input projection are trained through the circuit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hqdm.precision import MixedPrecisionModel, autocast
from hqdm.quantum.circuit_layer import CircuitLayer
from hqdm.quantum.circuits import chen_circuit

__all__ = ["BottleneckCircuit", "LiteUNet", "QuantumChannelGate", "timestep_embedding"]

TIME_DIM = 128
WIDTHS = (32, 64, 128)
GROUPS = 8


def timestep_embedding(t: Tensor, dim: int = TIME_DIM) -> Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): sines then cosines at geometric frequencies 1 .. 1/10000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / (half - 1))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(GROUPS, c_out), nn.SiLU()
    )


class ResidualBlock(nn.Module):
    """x + conv(SiLU(GN(conv(x)))), then SiLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(GROUPS, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x + self.body(x))


class BottleneckCircuit(CircuitLayer):
    """``<Z>`` of every wire of ``chen_circuit(n_qubits, n_layers)`` for angles (B, n_qubits), batched.

    The trainable circuit angles start uniform in [0, 2 pi). Differentiable in the input angles and the
    weights (adjoint method of the hqdm engine); :meth:`measure` switches to finite shots and/or noise.
    """

    def __init__(
        self,
        n_qubits: int,
        n_layers: int,
        *,
        semantics: str = "paper",
        sim_dtype: torch.dtype = torch.complex64,
    ) -> None:
        circuit = chen_circuit(n_qubits, n_layers, semantics=semantics)
        super().__init__(circuit, torch.rand(circuit.n_weights) * 2 * math.pi, sim_dtype=sim_dtype)
        self.n_qubits, self.n_layers, self.semantics = n_qubits, n_layers, semantics

    def forward(self, angles: Tensor) -> Tensor:
        if angles.dim() != 2 or angles.shape[1] != self.n_qubits:
            raise ValueError(f"expected angles of shape (B, {self.n_qubits}), got {tuple(angles.shape)}")
        z = self.expvals(angles[None])[0]
        return z.to(torch.promote_types(angles.dtype, z.dtype))  # float32 also for bf16 angles

    def extra_repr(self) -> str:
        return f"qubits={self.n_qubits}, layers={self.n_layers}, semantics={self.semantics}"


class QuantumChannelGate(nn.Module):
    """Per-channel gates in (0, 2) from a circuit fed with the feature map's channel means."""

    def __init__(self, channels: int, n_qubits: int, n_layers: int, *, semantics: str = "paper") -> None:
        super().__init__()
        self.to_angles = nn.Linear(channels, n_qubits)
        self.circuit = BottleneckCircuit(n_qubits, n_layers, semantics=semantics)
        self.to_gates = nn.Linear(n_qubits, channels)

    def forward(self, h: Tensor) -> Tensor:
        z = self.circuit(self.to_angles(h.mean(dim=(2, 3))))
        return h * (2 * torch.sigmoid(self.to_gates(z)))[:, :, None, None]


class LiteUNet(MixedPrecisionModel):
    """``model(x, t) -> eps`` for (B, C, 28, 28) images; ``n_qubits=None`` is the classical model."""

    def __init__(
        self,
        in_channels: int = 1,
        *,
        n_qubits: int | None = None,
        n_layers: int = 3,
        semantics: str = "paper",
    ) -> None:
        super().__init__()
        c1, c2, c3 = WIDTHS
        self.time_mlp = nn.Sequential(nn.Linear(TIME_DIM, TIME_DIM), nn.SiLU(), nn.Linear(TIME_DIM, c3))
        self.time_up = nn.Linear(TIME_DIM, c2)
        self.enc1 = _conv_block(in_channels, c1)
        self.enc2 = _conv_block(c1, c2, stride=2)
        self.enc3 = _conv_block(c2, c3, stride=2)
        self.mid = ResidualBlock(c3)
        self.quantum = (
            None if n_qubits is None else QuantumChannelGate(c3, n_qubits, n_layers, semantics=semantics)
        )
        self.up1 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
        self.up2 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
        self.out = nn.Sequential(_conv_block(2 * c1, c1), nn.Conv2d(c1, in_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"LiteUNet expects (B, C, 28, 28) images, got {tuple(x.shape)}")
        with autocast(self.precision, x.device):
            emb = timestep_embedding(t, TIME_DIM).to(x.dtype)
            e1 = self.enc1(x)
            e2 = self.enc2(e1)
            h = self.mid(self.enc3(e2) + self.time_mlp(emb)[:, :, None, None])
            if self.quantum is not None:
                h = self.quantum(h)
            d1 = F.silu(self.up1(h)) + e2 + self.time_up(emb)[:, :, None, None]
            d2 = F.silu(self.up2(d1))
            out = self.out(torch.cat([d2, e1], dim=1))
        return out.to(x.dtype)
