"""Hardware noise as data: depolarising and amplitude damping after every gate, bit-flip readout error.

Placement (the same in hqdm's simulators and in the PennyLane reference of the tests): after each gate,
including the encoding rotations, every wire the gate acts on goes through the depolarising channel and
then the amplitude-damping channel; before the readout every measured bit flips with the readout rate.
A CRZ/CRX counts as one gate here; on hardware it compiles to two CNOTs and single-qubit rotations, so the
rate of a two-qubit gate is the one to use (docs/hardware.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from hqdm.quantum.errors import NoiseRateError

#: spellings accepted by :func:`parse_noise` for each rate
NOISE_KEYS = {"depolarizing": "depolarizing", "damping": "amplitude_damping", "readout": "readout"}


@dataclass(frozen=True)
class NoiseModel:
    """Rates in [0, 1]: ``depolarizing`` p (rho -> (1-p) rho + p/3 (X rho X + Y rho Y + Z rho Z)),
    ``amplitude_damping`` gamma (|1> decays to |0> with probability gamma), ``readout`` (bit-flip)."""

    depolarizing: float = 0.0
    amplitude_damping: float = 0.0
    readout: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise NoiseRateError(f"noise rate {name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise NoiseRateError(f"noise rate {name} must lie in [0, 1], got {value!r}")

    @property
    def acts_on_gates(self) -> bool:
        """Whether the state itself is noisy (readout error alone leaves it pure)."""
        return self.depolarizing > 0 or self.amplitude_damping > 0

    def describe(self) -> str:
        """``depolarizing=0.001,damping=0,readout=0.01``: the text :func:`parse_noise` reads back."""
        values = (self.depolarizing, self.amplitude_damping, self.readout)
        return ",".join(f"{key}={value:g}" for key, value in zip(NOISE_KEYS, values, strict=True))


def parse_noise(text: str) -> NoiseModel:
    """``"depolarizing=1e-3,damping=2e-4,readout=1e-2"`` (any subset, others 0) -> NoiseModel."""
    rates: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in NOISE_KEYS:
            raise NoiseRateError(
                f"noise {text!r}: expected comma-separated KEY=RATE with KEY in {', '.join(NOISE_KEYS)}"
            )
        try:
            rates[NOISE_KEYS[key.strip()]] = float(value)
        except ValueError:
            raise NoiseRateError(f"noise {text!r}: {value.strip()!r} is not a number") from None
    return NoiseModel(**rates)
