"""Named errors of measured (finite-shot or noisy) circuit evaluation."""

from __future__ import annotations


class MeasurementError(ValueError):
    """A finite-shot or noisy evaluation was asked for with settings that cannot be simulated."""


class InvalidShotsError(MeasurementError):
    """``shots`` is not a whole number of at least 1."""


class NoiseRateError(MeasurementError):
    """A noise rate is not a finite probability in [0, 1]."""


class NotDifferentiableError(MeasurementError, RuntimeError):
    """Gradients were requested through a finite-shot or noisy circuit (e.g. a training step).

    hqdm samples shots and noise trajectories without a gradient; train on exact expectation values and
    measure afterwards (a QPU would estimate gradients by parameter shift: docs/hardware.md)."""
