"""Finite-shot readout: unbiased, binomial variance, joint bitstrings, seeded; named errors."""

from __future__ import annotations

import math

import pytest
import torch

from hqdm.models import build_model
from hqdm.models.measurement import quantum_layers, set_measurement
from hqdm.quantum import PatchCircuit, expvals
from hqdm.quantum.circuits import Circuit, Gate, build_circuit, chen_circuit
from hqdm.quantum.errors import InvalidShotsError, MeasurementError, NoiseRateError, NotDifferentiableError
from hqdm.quantum.measurement import Measurement, measured_expvals
from hqdm.quantum.noise_model import NoiseModel, parse_noise


def _case(circuit: Circuit, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, batch, circuit.n_wires, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(1, circuit.n_weights, generator=g, dtype=torch.float64) * 6
    return x, w


def _draws(circuit: Circuit, x, w, measurement: Measurement, repeats: int, seed: int) -> torch.Tensor:
    """(repeats, batch, n_wires): independent measured estimates of each circuit (one call, many rows)."""
    many = x.repeat(1, repeats, 1)
    gen = torch.Generator().manual_seed(seed)
    z = measured_expvals(circuit, many, w, measurement, generator=gen, dtype=torch.complex128)
    return z[0].unflatten(0, (repeats, x.shape[1]))


@pytest.mark.parametrize(
    ("circuit", "readout"),
    [
        (build_circuit("hqconv", 1), 0.0),  # one connected 12-qubit circuit: 4,096 outcomes a shot
        (build_circuit("fqconv", 1), 0.0),  # four independent 3-qubit parts
        (chen_circuit(6, 2, semantics="reference-code"), 0.05),  # RY encoding, CNOTs, readout flips
    ],
)
def test_shot_estimates_are_unbiased_with_binomial_variance(circuit: Circuit, readout: float) -> None:
    shots, repeats = 64, 400
    x, w = _case(circuit, batch=2, seed=1)
    exact = (1 - 2 * readout) * expvals_of(circuit, x, w)
    noise = NoiseModel(readout=readout) if readout else None
    z = _draws(circuit, x, w, Measurement(shots=shots, noise=noise), repeats, seed=2)
    assert torch.all(z.abs() <= 1) and torch.all(torch.remainder((1 - z) / 2 * shots, 1) < 1e-9)
    variance = (1 - exact.square()) / shots  # a binomial count of ones
    standard_error = (variance / repeats).sqrt().clamp(min=1e-12)
    assert torch.all((z.mean(0) - exact).abs() <= 5 * standard_error)
    # the sample variance of 400 draws is within ~5 of its standard errors (sqrt(2 / 399) = 7%)
    assert torch.allclose(z.var(0), variance, rtol=0.4, atol=1e-12)


def expvals_of(circuit: Circuit, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    from hqdm.quantum.engine import compile_circuit, simulate

    return simulate(compile_circuit(circuit), x, w, dtype=torch.complex128)[0]


def test_the_wires_of_one_shot_are_drawn_jointly() -> None:
    """RX(pi/2) then CNOT: the two wires always read the same bit, so each estimate of <Z_0> equals the
    estimate of <Z_1> from the same shots. Independent coins per wire would almost never agree."""
    bell = Circuit(2, (Gate("CNOT", (0, 1)),), 0, "bell")
    x = torch.tensor([[[math.pi / 2, 0.0]]], dtype=torch.float64)
    z = _draws(bell, x, torch.zeros(1, 0, dtype=torch.float64), Measurement(shots=16), 200, seed=3)
    assert torch.equal(z[..., 0], z[..., 1])
    assert z[..., 0].std() > 0.1  # and they do vary from draw to draw


def test_the_same_seed_gives_the_same_draws_and_another_seed_others() -> None:
    circuit = build_circuit("hqconv", 1)
    x, w = _case(circuit, batch=5, seed=4)
    shots = Measurement(shots=128)
    first, again, other = (_draws(circuit, x, w, shots, 3, seed) for seed in (7, 7, 8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_the_functional_api_takes_shots_and_noise() -> None:
    circuit = build_circuit("fqconv", 2)
    x, w = _case(circuit, batch=4, seed=10)
    noise = NoiseModel(depolarizing=0.01, readout=0.02)
    gen = torch.Generator().manual_seed(3)
    got = expvals(
        "fqconv", x[0], w.reshape(2, 24), shots=50, noise=noise, generator=gen, dtype=torch.complex128
    )
    gen.manual_seed(3)
    measurement = Measurement(shots=50, noise=noise)
    expected = measured_expvals(circuit, x, w, measurement, generator=gen, dtype=torch.complex128)[0]
    assert torch.equal(got, expected)
    exact = expvals("fqconv", x[0], w.reshape(2, 24), dtype=torch.complex128)
    assert torch.allclose(exact, expvals_of(circuit, x, w)) and not torch.allclose(got, exact, atol=1e-3)


def test_the_random_readout_control_reads_every_wire_as_zero() -> None:
    """``random-readout`` (each bit a fair coin): <Z> is 0 on every wire whatever the circuit computed, so
    the circuits' contribution is removed; with shots the estimates scatter around 0."""
    from hqdm.quantum.noise_levels import RANDOM_READOUT, noise_from_text

    circuit = build_circuit("hqconv", 1)
    x, w = _case(circuit, batch=3, seed=9)
    control = Measurement(noise=noise_from_text(RANDOM_READOUT))
    assert torch.equal(measured_expvals(circuit, x, w, control), torch.zeros(1, 3, 12))
    assert expvals_of(circuit, x, w).abs().max() > 0.1  # the exact values were not 0 already
    shots = Measurement(shots=256, noise=control.noise)
    z = measured_expvals(circuit, x, w, shots, generator=torch.Generator().manual_seed(1))
    assert z.abs().max() > 0 and z.abs().max() < 5 / 256**0.5  # 1 - 2k/N of fair coins: std 1/sqrt(N)


def test_a_layer_reads_out_with_shots_until_set_back_to_exact() -> None:
    torch.manual_seed(5)
    layer = PatchCircuit("hqconv", 2, sim_dtype=torch.complex128).double()
    x = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        exact = layer(x)
        layer.measure(Measurement(shots=32), seed=9)
        measured = layer(x)
        layer.measure(Measurement(shots=32), seed=9)
        repeated = layer(x)
        layer.measure(None)
        back = layer(x)
    gen = torch.Generator().manual_seed(9)
    wires, weights = x.reshape(1, 6, 12), layer.weights.detach()
    shots = Measurement(shots=32)
    expected = measured_expvals(
        layer.definition, wires, weights.reshape(1, -1), shots, generator=gen, dtype=torch.complex128
    )
    assert torch.equal(measured, expected.reshape(6, 3, 2, 2).double()) and torch.equal(measured, repeated)
    assert not torch.allclose(measured, exact, atol=1e-3)
    assert torch.equal(back, exact)
    assert torch.allclose(exact.reshape(6, 12), expvals("hqconv", wires[0], weights, dtype=torch.complex128))


def test_set_measurement_reaches_every_circuit_layer_with_its_own_seed() -> None:
    torch.manual_seed(6)
    model = build_model("quanvunet").eval()
    names = set_measurement(model, Measurement(shots=16), seed=1)
    layers = dict(quantum_layers(model))
    assert names == list(layers) and len(names) == 8  # 2 vertex blocks x 2 stages, 2 quanv blocks x 2
    assert len({layers[n].measurement_seed for n in names}) == len(names)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 500])
    with torch.no_grad():
        first = model(x, t)
        set_measurement(model, Measurement(shots=16), seed=1)
        assert torch.equal(model(x, t), first)
        set_measurement(model, None, layers=["mid.res0.circuits_1"])
    assert layers["mid.res0.circuits_1"].measurement is None and layers["mid.res1.circuits_1"].measurement
    with pytest.raises(MeasurementError, match=r"mid\.res0\.circuits_1"):
        set_measurement(model, None, layers=["mid.nothing"])


def test_shots_during_a_training_step_are_a_named_error() -> None:
    torch.manual_seed(7)
    model = build_model("lite-qunet-8q").train()
    set_measurement(model, Measurement(shots=100))
    with pytest.raises(NotDifferentiableError, match="train on exact"):
        model(torch.randn(2, 1, 28, 28), torch.tensor([1, 2])).square().mean().backward()
    layer = PatchCircuit("fqconv", 1)
    layer.measure(Measurement(noise=NoiseModel(depolarizing=0.01)))
    with pytest.raises(NotDifferentiableError):
        layer(torch.randn(2, 3, 2, 2))


@pytest.mark.parametrize("shots", [0, -5, 2.5, True, "64"])
def test_shots_must_be_a_positive_whole_number(shots) -> None:
    with pytest.raises(InvalidShotsError, match="shots must be a whole number of at least 1"):
        Measurement(shots=shots)


@pytest.mark.parametrize(
    "rates",
    [{"depolarizing": 1.5}, {"amplitude_damping": -0.1}, {"readout": math.nan}, {"depolarizing": "0.1"}],
)
def test_noise_rates_must_lie_in_zero_one(rates) -> None:
    with pytest.raises(NoiseRateError, match="noise rate"):
        NoiseModel(**rates)


@pytest.mark.parametrize(
    ("text", "match"),
    [("depolarizing=2", r"\[0, 1\]"), ("dep=0.1", "KEY=RATE"), ("readout=x", "not a number")],
)
def test_parse_noise_names_the_problem(text: str, match: str) -> None:
    with pytest.raises(NoiseRateError, match=match):
        parse_noise(text)
    model = parse_noise("depolarizing=1e-3,damping=2e-4,readout=0.01")
    assert model == NoiseModel(1e-3, 2e-4, 0.01) and parse_noise(model.describe()) == model
