"""Chen et al. (2025): the RY/RZ/CNOT circuit against PennyLane, the lightweight U-Nets, quantum shot
noise, the tailored schedule and the experiment runner."""

from __future__ import annotations

import json
import math

import pennylane as qml
import pytest
import torch

from hqdm.config import ConfigError, config_from_dict
from hqdm.diffusion import (
    GaussianDiffusion,
    GaussianNoise,
    InvalidScheduleError,
    QuantumNoise,
    make_noise_source,
    make_sampler,
    make_schedule,
    sample_noise,
)
from hqdm.experiments.chen2025 import BUDGETS, reproduce_chen2025
from hqdm.models import build_model, count_parameters
from hqdm.models.lite import BottleneckCircuit
from hqdm.quantum import chen_circuit, to_pennylane
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.registry import UnknownNameError
from hqdm.train import Trainer

# ---------------------------------------------------------------------------------------------------
# The circuit, written here from the description (not from hqdm's gate list)


def reference_chen(n_wires: int, semantics: str):
    dev = qml.device("default.qubit", wires=n_wires)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(x, weights):
        for w in range(n_wires):
            qml.RY(x[..., w], wires=w)
        for layer in weights:  # paper: (layers, n); reference-code: (layers, n, 2)
            for w in range(n_wires):
                if semantics == "paper":
                    qml.RZ(layer[w], wires=w)
                else:
                    qml.RZ(layer[w, 0], wires=w)
                    qml.RY(layer[w, 1], wires=w)
            for w in range(n_wires - 1):
                qml.CNOT(wires=[w, w + 1])
        return [qml.expval(qml.PauliZ(w)) for w in range(n_wires)]

    return lambda x, weights: torch.stack(circuit(x, weights), -1)


def _engine(n_wires: int, layers: int, semantics: str):
    plan = compile_circuit(chen_circuit(n_wires, layers, semantics=semantics))
    return lambda x, weights: simulate(plan, x[None], weights.reshape(1, -1), dtype=torch.complex128)[0]


def _values_and_grads(fn, x, w, probe):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = fn(x, w)
    gx, gw = torch.autograd.grad((out * probe).sum(), [x, w], allow_unused=True)
    return out.detach(), gx, torch.zeros_like(w) if gw is None else gw


@pytest.mark.parametrize("semantics", ["paper", "reference-code"])
@pytest.mark.parametrize(("n_wires", "layers"), [(5, 1), (6, 3)])
def test_chen_circuit_outputs_and_gradients_match_pennylane(semantics, n_wires, layers):
    g = torch.Generator().manual_seed(n_wires + layers)
    x = (torch.rand(4, n_wires, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    shape = (layers, n_wires) if semantics == "paper" else (layers, n_wires, 2)
    w = torch.rand(shape, generator=g, dtype=torch.float64) * 2 * math.pi
    probe = torch.randn(4, n_wires, generator=g, dtype=torch.float64)
    ref = _values_and_grads(reference_chen(n_wires, semantics), x, w, probe)
    got = _values_and_grads(_engine(n_wires, layers, semantics), x, w, probe)
    for name, a, b in zip(("outputs", "input grads", "weight grads"), got, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-10), f"{name}: max diff {(a - b).abs().max():.3g}"
    # the export replays the same gates with RY encoding
    dev = qml.device("default.qubit", wires=n_wires)
    apply = to_pennylane(chen_circuit(n_wires, layers, semantics=semantics))

    @qml.qnode(dev, interface="torch")
    def exported(xx, ww):
        apply(xx, ww)
        return [qml.expval(qml.PauliZ(i)) for i in range(n_wires)]

    assert torch.allclose(torch.stack(exported(x, w.reshape(1, -1)), -1), ref[0], atol=1e-10)


def test_paper_circuit_is_a_fixed_product_of_cosines_with_dead_weights():
    """RZ is diagonal and CNOT permutes basis states: one layer gives <Z_i> = prod_{j<=i} cos x_j."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 7, generator=g, dtype=torch.float64) * 6
    w = torch.rand(7, generator=g, dtype=torch.float64).requires_grad_()
    out = _engine(7, 1, "paper")(x, w)
    assert torch.allclose(out, torch.cumprod(torch.cos(x), dim=1), atol=1e-12)
    (gw,) = torch.autograd.grad(out.sum(), [w])
    assert gw.abs().max() < 1e-12


@pytest.mark.parametrize("semantics", ["paper", "reference-code"])
def test_only_the_reference_code_variant_depends_on_its_weights(semantics):
    """Same depth (2 layers), same inputs, two weight draws: the paper's RZ circuit gives the same outputs
    (and no weight gradient), the RZ+RY circuit different outputs and a gradient on every RY angle."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(5, 7, generator=g, dtype=torch.float64) * 6
    n_weights = 2 * 7 * (1 if semantics == "paper" else 2)
    engine = _engine(7, 2, semantics)
    first, second = (torch.rand(n_weights, generator=g, dtype=torch.float64) * 6 for _ in range(2))
    first.requires_grad_()
    out = engine(x, first)
    (grad,) = torch.autograd.grad(out.sum(), [first])
    difference = (out - engine(x, second)).abs().max().item()
    if semantics == "paper":
        assert difference < 1e-12 and grad.abs().max() < 1e-12
    else:
        assert difference > 0.1
        assert (grad.view(2, 7, 2)[..., 1].abs() > 1e-6).all()  # every RY angle (index 2 * wire + 1)


def test_encoding_field_defaults_to_rx_and_chen_uses_ry():
    assert chen_circuit(4, 1).encoding == "RY"
    assert [g.name for g in chen_circuit(4, 1).encoding_gates] == ["RY"] * 4
    with pytest.raises(ValueError, match="n_wires"):
        chen_circuit(1, 1)
    with pytest.raises(UnknownNameError, match="unknown semantics 'other'"):
        chen_circuit(4, 1, semantics="other")


def test_bottleneck_circuit_gradients_match_finite_differences():
    torch.manual_seed(2)
    layer = BottleneckCircuit(5, 2, semantics="reference-code", sim_dtype=torch.complex128).double()
    angles = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(3, 5, dtype=torch.float64)
    (grad,) = torch.autograd.grad((layer(angles) * probe).sum(), [angles])
    step = 1e-6
    with torch.no_grad():
        for index in [(0, 0), (1, 3), (2, 4)]:
            shift = torch.zeros_like(angles)
            shift[index] = step
            diff = ((layer(angles + shift) - layer(angles - shift)) * probe).sum() / (2 * step)
            assert abs(diff.item() - grad[index].item()) < 1e-7


# ---------------------------------------------------------------------------------------------------
# Models


def test_lite_models_shapes_and_parameter_split():
    x, t = torch.randn(2, 3, 28, 28), torch.tensor([3, 900])
    torch.manual_seed(0)
    for name, quantum in (("lite-unet", 0), ("lite-qunet-8q", 24), ("lite-qunet", 48)):
        model = build_model(name, in_channels=3)
        assert model(x, t).shape == x.shape
        assert count_parameters(model)[1] == quantum  # 3 layers x one RZ angle per qubit
    classical = sum(count_parameters(build_model("lite-unet")))
    hybrid = sum(count_parameters(build_model("lite-qunet-8q")))
    assert hybrid - classical == 128 * 8 + 8 + 8 * 128 + 128 + 24  # the two linears and the circuit


def test_gradients_reach_the_layers_before_the_circuit():
    torch.manual_seed(1)
    model = build_model("lite-qunet-8q")
    x, t = torch.randn(4, 1, 28, 28), torch.randint(0, 1000, (4,))
    model(x, t).square().mean().backward()
    to_angles = model.quantum.to_angles.weight.grad
    assert to_angles is not None and to_angles.abs().sum() > 0  # only reachable through the circuit
    assert model.enc3[0].weight.grad.abs().sum() > 0
    # the circuit input depends on the encoder: perturbing to_angles changes the output
    with torch.no_grad():
        before = model(x, t)
        model.quantum.to_angles.bias.add_(0.5)
        assert not torch.allclose(before, model(x, t))


# ---------------------------------------------------------------------------------------------------
# Quantum shot noise


def _moments(z: torch.Tensor) -> tuple[float, float, float, float]:
    z = z.double().flatten()
    mean, var = z.mean(), z.var()
    c = z - mean
    return (
        mean.item(),
        var.item(),
        (c**3).mean().item() / var.item() ** 1.5,
        (c**4).mean().item() / var**2 - 3,
    )


def test_quantum_noise_moments_match_the_standardised_binomial():
    shots, n = 16, 400_000
    noise = QuantumNoise(shots=shots)
    assert torch.allclose(noise.probabilities, torch.full((8,), 0.5, dtype=torch.float64), atol=1e-12)
    z = noise.sample((n,), generator=torch.Generator().manual_seed(0))
    mean, var, skew, kurt = _moments(z)
    se = 1 / math.sqrt(n)
    assert abs(mean) < 5 * se and abs(var - 1) < 5 * math.sqrt(2) * se
    assert abs(skew) < 5 * math.sqrt(6) * se
    assert abs(kurt - (-2 / shots)) < 0.03  # excess kurtosis -2/S; a Gaussian would give 0
    assert z.abs().max() <= math.sqrt(shots) + 1e-6  # bounded tails
    assert len(torch.unique(z.round(decimals=4))) == shots + 1  # a lattice of S + 1 points


def test_biased_quantum_noise_has_the_derived_per_wire_skewness():
    shots, rows = 8, 100_000
    noise = QuantumNoise(shots=shots, n_qubits=4, angle=1.0)
    p = noise.probabilities
    # one layer: wire i measures the parity of wires 0..i, <Z_i> = cos(1)^(i+1)
    assert torch.allclose(p, (1 - math.cos(1.0) ** torch.arange(1, 5, dtype=torch.float64)) / 2, atol=1e-12)
    z = noise.sample((rows, 4), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for wire in range(4):
        mean, var, skew, kurt = _moments(z[:, wire])
        q = p[wire].item()
        spq = shots * q * (1 - q)
        assert abs(mean) < 0.02 and abs(var - 1) < 0.03
        assert abs(skew - (1 - 2 * q) / math.sqrt(spq)) < 0.04
        assert abs(kurt - (1 - 6 * q * (1 - q)) / spq) < 0.1


def test_quantum_noise_probabilities_match_pennylane_and_draws_are_reproducible():
    noise = QuantumNoise(n_qubits=5, n_layers=2, angle=0.7, semantics="reference-code", weight_seed=3)
    circuit = chen_circuit(5, 2, semantics="reference-code")
    weights = torch.rand(
        1, circuit.n_weights, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    apply = to_pennylane(circuit)

    @qml.qnode(qml.device("default.qubit", wires=5))
    def probs():
        apply(torch.full((5,), 0.7, dtype=torch.float64), weights * 2 * math.pi)
        return [qml.probs(wires=w) for w in range(5)]

    expected = torch.stack([torch.as_tensor(pw)[1] for pw in probs()])
    assert torch.allclose(noise.probabilities, expected, atol=1e-10)
    a = noise.sample((3, 7), generator=torch.Generator().manual_seed(5))
    b = noise.sample((3, 7), generator=torch.Generator().manual_seed(5))
    c = noise.sample((3, 7), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_quantum_noise_plugs_into_the_diffusion_and_rejects_bad_options():
    source = make_noise_source("quantum", shots=4)
    diffusion = GaussianDiffusion(make_schedule("small-data", 50), noise=source)
    cpu = torch.device("cpu")
    eps = sample_noise(diffusion.noise, (2, 1, 28, 28), generator=None, device=cpu, dtype=torch.float64)
    assert eps.dtype == torch.float64 and len(torch.unique(eps.round(decimals=6))) <= 5
    with pytest.raises(ValueError, match="deterministic"):
        QuantumNoise(angle=0.0)
    with pytest.raises(ValueError, match="bad options"):
        make_noise_source("quantum", qubits=3)
    with pytest.raises(UnknownNameError, match="unknown noise source 'pink'"):
        make_noise_source("pink")


def test_config_selects_quantum_noise_for_training(tmp_path):
    raw = {
        "model": {"name": "lite-unet"},
        "diffusion": {"schedule": "small-data", "num_timesteps": 20, "noise": "quantum",
                      "noise_options": {"shots": 32}},
        "output_dir": str(tmp_path / "run"),
    }  # fmt: skip
    cfg = config_from_dict(raw)
    trainer = Trainer(cfg, images=torch.zeros(4, 1, 28, 28), progress=False)
    assert isinstance(trainer.diffusion.noise, QuantumNoise) and trainer.diffusion.noise.shots == 32
    raw["diffusion"]["noise_options"] = {"shots": 0}
    with pytest.raises(ConfigError, match=r"diffusion\.noise_options"):
        config_from_dict(raw)
    raw["diffusion"]["noise"] = "pink"
    with pytest.raises(ConfigError, match=r"diffusion\.noise"):
        config_from_dict(raw)


def test_evaluation_samples_with_the_checkpoint_configs_noise(monkeypatch):
    """`hqdm evaluate` draws its sampler noise from diffusion.noise, as training did (each image's
    rows from its own stream of that source)."""
    import hqdm.diffusion.pipeline as pipeline
    import hqdm.experiments.evaluate_checkpoint as evaluate

    seen = []

    def recording_sampler(name, schedule, *, noise=None, **options):
        if noise is not None:  # the pipeline first checks the settings with a noise-less sampler
            seen.append(noise)
        return make_sampler(name, schedule, noise=noise, **options)

    monkeypatch.setattr(pipeline, "make_sampler", recording_sampler)
    settings = evaluate.EvalSettings(num_samples=2, sampler="ddim", steps=2, batch_size=2)
    model = build_model("lite-unet")
    for noise, expected in (("quantum", QuantumNoise), ("gaussian", GaussianNoise)):
        raw = {
            "model": {"name": "lite-unet"},
            "diffusion": {"schedule": "small-data", "num_timesteps": 10, "noise": noise},
        }
        batches = list(
            evaluate.sample_batches(model, config_from_dict(raw), settings, image_shape=(1, 28, 28))
        )
        assert isinstance(seen[-1].base, expected) and batches[0].shape == (2, 1, 28, 28)


# ---------------------------------------------------------------------------------------------------
# The tailored schedule


def test_tailored_schedule_endpoints_and_shape():
    s = make_schedule("small-data", 200, logsnr_max=8.0, logsnr_min=-8.0, shift=0.0)
    logsnr = s.snr.log()
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()
    sig = torch.sigmoid(torch.tensor([8.0, -8.0], dtype=torch.float64))
    assert torch.isclose(s.alphas_cumprod[-1], sig[1] / sig[0], rtol=1e-9)
    # symmetric bounds without shift: log-SNR is antisymmetric about the middle step (u = 1/2), except
    # near t = 0 where abar is renormalised to start from clean data
    assert abs(logsnr[99].item()) < 0.01
    assert torch.allclose(logsnr[50:99], -logsnr[100:149].flip(0), atol=0.02)
    shifted = make_schedule("small-data", 200, logsnr_max=8.0, logsnr_min=-8.0, shift=1.5)
    assert (shifted.snr[:-1] > s.snr[:-1]).all()  # a positive shift keeps more signal at every inner step
    assert torch.isclose(shifted.alphas_cumprod[-1], s.alphas_cumprod[-1])


def test_tailored_schedule_default_and_invalid_options():
    s = make_schedule("small-data", 1000)
    cosine = make_schedule("cosine", 1000)
    assert 1e-4 < s.alphas_cumprod[-1] < 2e-4 and s.alphas_cumprod[0] > 0.9998
    assert s.snr[500] > cosine.snr[500]  # shifted towards higher SNR for 28 px images
    with pytest.raises(InvalidScheduleError, match="logsnr_min < logsnr_max"):
        make_schedule("small-data", 10, logsnr_min=2.0, logsnr_max=1.0)


# ---------------------------------------------------------------------------------------------------
# The runner


def test_runner_end_to_end_and_resumable(tmp_path):
    tiny = BUDGETS["smoke"].__class__(
        "tiny", (3,), 4, 1, 4, 8, "lite-qunet-8q", 2, 6, "ddim", 3, 1.0, ("ssim",)
    )
    messages: list[str] = []
    kwargs = dict(data_dir=None, seeds=2, budget=tiny, dataset="embedded-mnist", reference_split="train",
                  cells=["classical-gaussian", "quantum-quantum"], log=messages.append)  # fmt: skip
    table = reproduce_chen2025(tmp_path, **kwargs)
    assert sum(m.startswith("train") for m in messages) == 4
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert rows[0] == "digit,cell,seeds,ssim_mean,ssim_std" and len(rows) == 3
    assert "| 3 |" in table.read_text()
    record = json.loads((tmp_path / "runs/quantum-quantum/digit3/seed1/eval/evaluation.json").read_text())
    assert record["num_generated"] == 2 and 0 < record["ssim"] <= 1
    messages.clear()
    reproduce_chen2025(tmp_path, **kwargs)
    assert messages == []  # nothing retrained or re-evaluated
