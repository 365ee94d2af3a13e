"""What a hardware measurement reads the circuits with: each setting (exact, a shot count, a noise level),
the seeds and the sampling, and the parsing of ``--shots`` / ``--noise`` (``hqdm hardware measure``,
``hqdm sample --shots/--noise``)."""

from __future__ import annotations

from dataclasses import dataclass

from hqdm.config import ConfigError
from hqdm.experiments.evaluate_checkpoint import EvalSettings
from hqdm.quantum.errors import MeasurementError
from hqdm.quantum.measurement import DEFAULT_TRAJECTORIES, Measurement
from hqdm.quantum.noise_levels import READOUT_LEVELS, noise_from_text

EXACT = "exact"


@dataclass(frozen=True)
class HardwareSettings:
    """What is measured: ``shots`` (None = exact) and ``noise_levels`` (names of READOUT_LEVELS: the
    hardware levels and the random-readout control, read with ``noise_shots`` shots, None = exact
    expectation of the noisy circuit), each for every seed."""

    shots: tuple[int | None, ...] = (64, 256, 1024, 4096, None)
    noise_levels: tuple[str, ...] = tuple(READOUT_LEVELS)
    noise_shots: int | None = None
    trajectories: int = DEFAULT_TRAJECTORIES
    seeds: tuple[int, ...] = (0, 1, 2)
    num_samples: int = 1000
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0  # DDIM eta: 1 draws fresh noise at every step (docs/RESULTS.md)
    batch_size: int = 250
    kid_subset_size: int = 100
    feature_precision: str = "fp32"

    def __post_init__(self) -> None:
        unknown = [name for name in self.noise_levels if name not in READOUT_LEVELS]
        if unknown:
            raise ConfigError(f"--noise: unknown level {unknown}; choose from {', '.join(READOUT_LEVELS)}")
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed")
        for setting in self.settings():  # bad shot counts fail here, before any sampling
            setting.measurement()

    def settings(self) -> list[Setting]:
        """Exact first (when ``shots`` lists None), then each shot count, then each noise level."""
        exact = [Setting(EXACT, None, None)] if None in self.shots else []
        shot_settings = [Setting(f"shots-{n}", n, None) for n in self.shots if n is not None]
        noisy = [Setting(name, self.noise_shots, name, self.trajectories) for name in self.noise_levels]
        return exact + shot_settings + noisy

    def costliest_first(self) -> list[Setting]:
        """The settings in the order ``--workers`` starts their cells, so that the longest do not end last:
        noise levels with gate errors by their rate (trajectories branch at every error: ``hqdm bench
        readout`` puts Sycamore's circuits at about 4x H2's), then shot counts from the largest, then
        readout-only levels, then exact."""

        def cost(setting: Setting) -> tuple[int, float]:
            rates = READOUT_LEVELS[setting.noise] if setting.noise is not None else None
            if rates is not None and rates.acts_on_gates:
                return 2, rates.depolarizing + rates.amplitude_damping
            if setting.shots is None and rates is None:
                return 0, 0.0
            return 1, float(setting.shots or 0)

        return sorted(self.settings(), key=cost, reverse=True)

    def evaluation(self, seed: int) -> EvalSettings:
        return EvalSettings(
            num_samples=self.num_samples, sampler=self.sampler, steps=self.steps, eta=self.eta,
            metrics=("fid", "kid"),
            seed=seed, batch_size=self.batch_size, kid_subset_size=self.kid_subset_size,
            feature_precision=self.feature_precision,
        )  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One readout of the circuits: a label for files and tables, shots (None: exact), a noise level."""

    label: str
    shots: int | None
    noise: str | None
    trajectories: int = DEFAULT_TRAJECTORIES

    def measurement(self) -> Measurement | None:
        if self.shots is None and self.noise is None:
            return None
        noise = None if self.noise is None else READOUT_LEVELS[self.noise]
        try:
            return Measurement(shots=self.shots, noise=noise, trajectories=self.trajectories)
        except MeasurementError as err:
            raise ConfigError(f"--shots/--noise: {err}") from err


def parse_shots(text: str) -> tuple[int | None, ...]:
    """``"64,256,exact"`` -> ``(64, 256, None)``; anything else is a ConfigError naming --shots."""
    values: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            values.append(None if part == EXACT else int(part))
        except ValueError:
            raise ConfigError(f"--shots: expected whole numbers or 'exact', got {part!r}") from None
    return tuple(values)


def measurement_from_options(shots: int | None, noise: str | None) -> Measurement | None:
    """The readout ``--shots`` and ``--noise`` ask for (None when neither is given); ConfigError if bad."""
    if shots is None and noise is None:
        return None
    try:
        return Measurement(shots=shots, noise=None if noise is None else noise_from_text(noise))
    except MeasurementError as err:
        raise ConfigError(f"--shots/--noise: {err}") from err
