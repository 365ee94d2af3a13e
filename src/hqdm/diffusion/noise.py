"""Noise sources: where the Gaussian noise of the forward process and of the samplers comes from.

The process and the samplers only talk to the small :class:`NoiseSource` interface, so another source
(e.g. one built from quantum measurements) can replace :class:`GaussianNoise` without touching them.

Generator rule: a ``torch.Generator`` lives on one device. When a generator is given, numbers are drawn
on the generator's device and then moved to the requested device. A CPU generator therefore gives the
same numbers whether the model runs on CPU or CUDA. Without a generator the global RNG of the target
device is used.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from hqdm.quantum import chen_circuit
from hqdm.quantum.circuit_layer import CircuitLayer
from hqdm.registry import UnknownNameError

__all__ = [
    "NOISE_SOURCES",
    "GaussianNoise",
    "NoiseSource",
    "NoiseSourceError",
    "QuantumNoise",
    "draw_device",
    "make_noise_source",
    "sample_noise",
]


class NoiseSourceError(RuntimeError):
    """A noise source returned a tensor of the wrong shape, dtype or device."""


@runtime_checkable
class NoiseSource(Protocol):
    """Anything that returns i.i.d. zero-mean, unit-variance noise of a requested shape.

    Implementations must return exactly ``shape`` on ``device`` with ``dtype`` and should draw all
    randomness from ``generator`` when one is given, so that training and sampling stay reproducible.
    """

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor: ...


def draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """The device random numbers must be drawn on: the generator's, or ``device`` if there is none."""
    return generator.device if generator is not None else device


class GaussianNoise:
    """Standard normal noise from torch's RNG (the default source)."""

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        target = torch.device(device) if device is not None else torch.device("cpu")
        values = torch.randn(shape, generator=generator, device=draw_device(generator, target), dtype=dtype)
        return values.to(target)

    def __repr__(self) -> str:
        return "GaussianNoise()"


class QuantumNoise:
    """Shot noise of a measured quantum circuit, standardised to zero mean and unit variance.

    The circuit is :func:`hqdm.quantum.chen_circuit` (``n_qubits`` wires, ``n_layers`` layers, weights
    drawn once from ``weight_seed``) with every wire encoded at the angle ``angle``. The engine computes
    each wire's probability ``p_w`` of measuring 1 from ``<Z_w>`` (``p_w = (1 - <Z_w>) / 2``). Noise
    element ``e`` (in row-major order) is read from wire ``w = e mod n_qubits`` measured ``shots`` times:
    the number of ones ``k ~ Binomial(shots, p_w)`` is drawn with the torch generator, and the element is
    ``(k - shots p_w) / sqrt(shots p_w (1 - p_w))``. Each element is an independent measurement run, so
    elements are independent (wire correlations within one shot are not used).

    The values lie on a lattice of ``shots + 1`` points, bounded by ``sqrt(shots (1 - p) / p)`` above;
    skewness ``(1 - 2p) / sqrt(S p (1 - p))`` and excess kurtosis ``(1 - 6p(1 - p)) / (S p (1 - p))``
    (``S = shots``); at the default ``angle = pi/2`` every ``p_w = 1/2``: symmetric, excess kurtosis
    ``-2/S``, no values beyond ``+-sqrt(S)``. See docs/chen2025.md.
    """

    def __init__(
        self,
        *,
        shots: int = 64,
        n_qubits: int = 8,
        n_layers: int = 1,
        angle: float = math.pi / 2,
        semantics: str = "paper",
        weight_seed: int = 0,
    ) -> None:
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ValueError(f"shots must be a positive integer, got {shots!r}")
        if not math.isfinite(angle):
            raise ValueError(f"angle must be a finite number of radians, got {angle!r}")
        self.shots, self.n_qubits, self.n_layers = shots, n_qubits, n_layers
        self.angle, self.semantics, self.weight_seed = float(angle), semantics, weight_seed
        # computed once, eagerly, so that a bad circuit fails at construction
        self.probabilities = self._wire_probabilities()

    def _wire_probabilities(self) -> Tensor:
        """(n_qubits,) float64: the probability of measuring 1 on each wire, from the engine."""
        circuit = chen_circuit(self.n_qubits, self.n_layers, semantics=self.semantics)
        gen = torch.Generator().manual_seed(self.weight_seed)
        weights = torch.rand(circuit.n_weights, generator=gen, dtype=torch.float64) * 2 * math.pi
        layer = CircuitLayer(circuit, weights, sim_dtype=torch.complex128)
        angles = torch.full((1, 1, self.n_qubits), self.angle, dtype=torch.float64)
        with torch.no_grad():  # fixed weights: nothing here is trained
            z = layer.expvals(angles)[0, 0]
        p = ((1.0 - z) / 2.0).clamp(0.0, 1.0)
        if (p * (1 - p) * self.shots < 1e-6).any():
            raise ValueError(
                f"angle={self.angle} makes some wire's measurement (almost) deterministic "
                f"(p = {p.tolist()}): its shot noise cannot be standardised; choose an angle away from "
                "multiples of pi"
            )
        return p

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        target = torch.device(device) if device is not None else torch.device("cpu")
        where = draw_device(generator, target)
        numel = math.prod(shape)
        wire = torch.arange(numel, device=where) % self.n_qubits
        p = self.probabilities.to(where)[wire]
        counts = torch.full_like(p, float(self.shots))
        ones = torch.binomial(counts, p, generator=generator)
        values = (ones - counts * p) / torch.sqrt(counts * p * (1 - p))
        return values.reshape(shape).to(dtype=dtype).to(target)

    def __repr__(self) -> str:
        return (
            f"QuantumNoise(shots={self.shots}, n_qubits={self.n_qubits}, n_layers={self.n_layers}, "
            f"angle={self.angle:g}, semantics={self.semantics!r})"
        )


#: noise sources selectable by name (``diffusion.noise`` in a config)
NOISE_SOURCES: dict[str, type] = {"gaussian": GaussianNoise, "quantum": QuantumNoise}


def make_noise_source(name: str, **options: Any) -> NoiseSource:
    """The noise source registered as ``name`` built with ``options`` (e.g. ``shots`` for "quantum")."""
    if name not in NOISE_SOURCES:
        raise UnknownNameError("noise source", name, NOISE_SOURCES)
    try:
        return NOISE_SOURCES[name](**options)
    except TypeError as err:  # unknown option names
        raise ValueError(f"bad options for noise source {name!r}: {err}") from err


def sample_noise(
    source: NoiseSource,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Draw from ``source`` and check the result, so a faulty custom source fails loudly and early."""
    noise = source.sample(tuple(shape), generator=generator, device=device, dtype=dtype)
    if not isinstance(noise, Tensor):
        raise NoiseSourceError(f"{source!r}.sample returned {type(noise).__name__}, expected a torch.Tensor")
    if tuple(noise.shape) != tuple(shape) or noise.dtype != dtype or noise.device.type != device.type:
        raise NoiseSourceError(
            f"{source!r}.sample returned shape {tuple(noise.shape)}, {noise.dtype} on {noise.device}; "
            f"expected shape {tuple(shape)}, {dtype} on {device}"
        )
    return noise
