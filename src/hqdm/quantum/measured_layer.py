"""A mixin that lets a circuit layer be read out like a QPU: finite shots and/or hardware noise.

A layer is exact (the fast engine) until :meth:`MeasuredLayer.measure` gives it a
:class:`~hqdm.quantum.measurement.Measurement`; it then draws shots and noise from its own generator, seeded
once, so a run with the same seed and the same batches repeats exactly. One generator per device: a CPU
and a CUDA run draw different (each reproducible) numbers.
"""

from __future__ import annotations

import torch

from hqdm.quantum.circuits import Circuit
from hqdm.quantum.measurement import Measurement, measured_expvals


class MeasuredLayer:
    """Mixin for ``nn.Module`` circuit layers; see :meth:`measure`."""

    measurement: Measurement | None = None
    measurement_seed: int = 0

    def measure(self, measurement: Measurement | None, *, seed: int = 0) -> None:
        """Read the circuits out with ``measurement`` from now on (None or an exact one: the exact engine),
        drawing from a generator seeded with ``seed``."""
        exact = measurement is None or measurement.is_exact
        self.measurement = None if exact else measurement
        self.measurement_seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def draw_states(self) -> dict[str, torch.Tensor]:
        """Where this layer's random draws stand, per device, for :meth:`restore_draws`."""
        generators = getattr(self, "_generators", {})  # none before the first measure()
        return {str(device): g.get_state() for device, g in generators.items()}

    def restore_draws(self, states: dict[str, torch.Tensor]) -> None:
        """Continue the draws from where :meth:`draw_states` recorded them (after :meth:`measure`)."""
        for name, state in states.items():
            generator = torch.Generator(name)
            generator.set_state(state)
            self._generators[torch.device(name)] = generator

    def measured_expvals(
        self, circuit: Circuit, inputs: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """:func:`~hqdm.quantum.measurement.measured_expvals` with this layer's settings and generator."""
        device = inputs.device
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.measurement_seed)
        return measured_expvals(
            circuit, inputs, weights, self.measurement, generator=self._generators[device], dtype=dtype
        )
