"""Tests for hqdm.diffusion: schedules, P2 loss, noise sources, EMA and samplers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from hqdm.diffusion import (
    EMA,
    DDIMSampler,
    DDPMSampler,
    GaussianDiffusion,
    GaussianNoise,
    InvalidScheduleError,
    NoiseSchedule,
    NoiseSource,
    NoiseSourceError,
    Sampler,
    available_schedules,
    ema_decay,
    make_sampler,
    make_schedule,
    p2_weights,
    register_schedule,
    sampler_description,
    sampler_label,
    sampler_options,
)
from hqdm.diffusion import schedules as schedules_module
from hqdm.registry import UnknownNameError

# --------------------------------------------------------------------------------------------------
# helpers


def cosine_f(t: float, num_timesteps: int, s: float = 0.008) -> float:
    return math.cos((t / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2


class TinyEps(nn.Module):
    """A small conv epsilon model whose output depends on t; records what it was called with."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)
        self.calls: list[tuple[Tensor, bool, bool]] = []

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls.append((t.clone(), self.training, torch.is_grad_enabled()))
        return torch.tanh(self.conv(x)) * 2.0 + 0.01 * t.to(x.dtype).reshape(-1, 1, 1, 1)


def point_mass_oracle(schedule: NoiseSchedule, c: Tensor):
    """The exact eps for data that is always the image c: eps = (x_t - sqrt(abar_t) c) / sqrt(1 - abar_t)."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        abar = schedule.gather(schedule.alphas_cumprod, t, x)
        return (x - abar.sqrt() * c) / (1 - abar).sqrt()

    return model


def mixture_oracle(schedule: NoiseSchedule, modes: Tensor, weights: Tensor):
    """The exact eps for data drawn from sum_i weights[i] · delta(modes[i]) (modes: (K, C, H, W))."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        abar = schedule.gather(schedule.alphas_cumprod, t, x)
        diff = x.unsqueeze(1) - abar.sqrt().unsqueeze(1) * modes.unsqueeze(0)
        log_post = weights.log() - diff.square().flatten(2).sum(-1) / (2 * (1 - abar.flatten()[:, None]))
        posterior = torch.softmax(log_post, dim=1)
        mean_x0 = torch.einsum("bk,k...->b...", posterior, modes)
        return (x - abar.sqrt() * mean_x0) / (1 - abar).sqrt()

    return model


# --------------------------------------------------------------------------------------------------
# schedules


def test_cosine_schedule_follows_formula_and_clips_last_betas() -> None:
    T = 1000
    s = make_schedule("cosine", T)
    assert s.num_timesteps == T and s.betas.dtype == torch.float64
    assert s.betas.max().item() == pytest.approx(0.999, abs=0)
    assert s.betas[-1].item() == 0.999  # the unclipped last beta would be 1
    clipped = (s.betas == 0.999).nonzero().flatten()
    first_clipped = int(clipped[0])
    for t in (0, 10, 100, 500, first_clipped - 1):
        expected_beta = 1 - cosine_f(t + 1, T) / cosine_f(t, T)
        assert s.betas[t].item() == pytest.approx(expected_beta, rel=1e-9)
        assert s.alphas_cumprod[t].item() == pytest.approx(cosine_f(t + 1, T) / cosine_f(0, T), rel=1e-9)
    assert (s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all()


def test_cosine_options_change_the_schedule() -> None:
    base = make_schedule("cosine", 100)
    assert not torch.equal(base.betas, make_schedule("cosine", 100, s=0.02).betas)
    assert make_schedule("cosine", 100, max_beta=0.5).betas.max().item() == 0.5


def test_linear_schedule_endpoints_and_scaling() -> None:
    s = make_schedule("linear")
    assert s.num_timesteps == 1000
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(s.betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64))
    short = make_schedule("linear", 100)
    assert short.betas[0].item() == pytest.approx(1e-3) and short.betas[-1].item() == pytest.approx(0.2)
    unscaled = make_schedule("linear", 100, scale_with_steps=False)
    assert unscaled.betas[-1].item() == pytest.approx(0.02)


def test_custom_betas_and_derived_tables() -> None:
    betas = [0.1, 0.2, 0.3]
    s = make_schedule("custom", betas=betas)
    assert s.num_timesteps == 3
    assert torch.allclose(s.alphas_cumprod, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))
    assert s.alphas_cumprod_prev[0].item() == 1.0
    # At t = 0 the posterior is a point mass on x0: variance 0, mean = x0.
    assert s.posterior_variance[0].item() == 0.0
    assert s.posterior_mean_coef_x0[0].item() == pytest.approx(1.0)
    assert s.posterior_mean_coef_xt[0].item() == pytest.approx(0.0)
    assert s.posterior_variance[2].item() == pytest.approx(0.3 * (1 - 0.72) / (1 - 0.504))
    with pytest.raises(InvalidScheduleError, match="num_timesteps=4 but 3 betas"):
        make_schedule("custom", 4, betas=betas)


@pytest.mark.parametrize(
    ("betas", "message"),
    [
        ([0.1, float("nan")], "finite"),
        ([0.1, float("inf")], "finite"),
        ([0.0, 0.1], r"strictly inside \(0, 1\)"),
        ([0.1, 1.0], r"strictly inside \(0, 1\)"),
        ([-0.1], r"strictly inside \(0, 1\)"),
        ([], "non-empty"),
        ([[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_betas_are_rejected(betas: list, message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message):
        NoiseSchedule(betas)


def test_registry_errors_and_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownNameError, match="schedule 'tailored'; choose one of cosine, linear, custom"):
        make_schedule("tailored")
    with pytest.raises(InvalidScheduleError, match="bad options"):
        make_schedule("cosine", 10, not_an_option=1)
    with pytest.raises(InvalidScheduleError, match="positive int"):
        make_schedule("linear", 0)

    monkeypatch.setattr(schedules_module, "_REGISTRY", dict(schedules_module._REGISTRY))

    @register_schedule("constant")
    def constant_betas(num_timesteps: int = 7, *, beta: float = 0.05) -> Tensor:
        return torch.full((num_timesteps,), beta, dtype=torch.float64)

    assert "constant" in available_schedules()
    s = make_schedule("constant", 5, beta=0.1)
    assert s.num_timesteps == 5 and torch.allclose(s.betas, torch.full((5,), 0.1, dtype=torch.float64))
    assert make_schedule("constant").num_timesteps == 7
    with pytest.raises(ValueError, match="already registered"):
        register_schedule("constant")(constant_betas)


def test_gather_casts_and_broadcasts() -> None:
    s = make_schedule("cosine", 20)
    x = torch.zeros(3, 2, 4, 4, dtype=torch.float32)
    out = s.gather(s.alphas_cumprod, torch.tensor([0, 5, 19]), x)
    assert out.shape == (3, 1, 1, 1) and out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx(s.alphas_cumprod[[0, 5, 19]].tolist(), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        s.gather(s.alphas_cumprod, torch.tensor([0, 1]), x)


# --------------------------------------------------------------------------------------------------
# P2 weights and the training loss


def test_p2_weights_default_equal_one_minus_abar_and_reference_values() -> None:
    s = make_schedule("cosine")
    w = GaussianDiffusion(s).loss_weights
    assert torch.allclose(w, 1 - s.alphas_cumprod, rtol=1e-9, atol=0)
    for t, expected, rel in [(0, 4.1e-5, 0.02), (10, 7.2e-4, 0.01), (100, 0.028, 0.03), (500, 0.51, 0.01)]:
        assert w[t].item() == pytest.approx(expected, rel=rel)
    assert w[999].item() == pytest.approx(1.0, abs=1e-6)


def test_p2_gamma_and_k_each_enter_the_formula() -> None:
    s = make_schedule("cosine", 50)
    snr = s.alphas_cumprod / (1 - s.alphas_cumprod)
    assert torch.allclose(p2_weights(s, gamma=2.0, k=1.0), (1 - s.alphas_cumprod) ** 2)
    assert torch.allclose(p2_weights(s, gamma=1.0, k=0.5), 1 / (0.5 + snr))
    assert torch.allclose(p2_weights(s, gamma=0.5, k=3.0), (3.0 + snr) ** -0.5)
    assert torch.equal(p2_weights(s, gamma=0.0, k=1.0), torch.ones(50, dtype=torch.float64))
    diffusion = GaussianDiffusion(s, p2_gamma=0.5, p2_k=3.0)
    assert torch.allclose(diffusion.loss_weights, (3.0 + snr) ** -0.5)
    with pytest.raises(ValueError, match="p2_gamma"):
        p2_weights(s, gamma=-1.0)
    with pytest.raises(ValueError, match="p2_k"):
        p2_weights(s, k=float("nan"))


def test_loss_is_weighted_mean_of_per_sample_mse() -> None:
    s = make_schedule("cosine", 30)
    diffusion = GaussianDiffusion(s, p2_gamma=1.5, p2_k=0.7)
    x0 = torch.rand(4, 1, 3, 3, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 7, 15, 29])
    noise = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    eps_hat = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    loss = diffusion.training_loss(lambda x, tt: eps_hat, x0, t=t, noise=noise)
    w = (0.7 + s.snr[t]) ** -1.5
    expected = (w * (eps_hat - noise).square().mean(dim=(1, 2, 3))).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def test_q_sample_formula() -> None:
    s = make_schedule("linear", 40)
    diffusion = GaussianDiffusion(s)
    x0, noise = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    t = torch.tensor([3, 39])
    x_t = diffusion.q_sample(x0, t, noise)
    for i in range(2):
        abar = s.alphas_cumprod[t[i]].item()
        assert torch.allclose(x_t[i], math.sqrt(abar) * x0[i] + math.sqrt(1 - abar) * noise[i], atol=1e-6)
    with pytest.raises(ValueError, match="noise shape"):
        diffusion.q_sample(x0, t, noise[:1])


def test_perfect_model_gives_zero_loss_and_zero_model_does_not() -> None:
    s = make_schedule("cosine", 50)
    diffusion = GaussianDiffusion(s)
    x0 = torch.rand(8, 1, 4, 4, dtype=torch.float64) * 2 - 1

    def perfect(x_t: Tensor, t: Tensor) -> Tensor:  # recovers the noise from x_t and the known x0
        abar = s.gather(s.alphas_cumprod, t, x_t)
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    g = torch.Generator().manual_seed(3)
    assert diffusion.training_loss(perfect, x0, generator=g).item() < 1e-12
    g = torch.Generator().manual_seed(3)
    assert diffusion.training_loss(lambda x, t: torch.zeros_like(x), x0, generator=g).item() > 1e-3


def test_loss_is_reproducible_and_resumable_from_generator_state() -> None:
    diffusion = GaussianDiffusion(make_schedule("cosine", 50))
    model = TinyEps()
    x0 = torch.rand(4, 1, 5, 5) * 2 - 1

    def run(g: torch.Generator, n: int) -> list[float]:
        return [diffusion.training_loss(model, x0, generator=g).item() for _ in range(n)]

    full = run(torch.Generator().manual_seed(42), 4)
    assert full == run(torch.Generator().manual_seed(42), 4)
    assert full != run(torch.Generator().manual_seed(43), 4)
    g = torch.Generator().manual_seed(42)
    first_half = run(g, 2)
    resumed = torch.Generator()
    resumed.set_state(g.get_state())
    assert first_half + run(resumed, 2) == full


def test_model_receives_int64_timesteps_in_range() -> None:
    diffusion = GaussianDiffusion(make_schedule("cosine", 20))
    model = TinyEps()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        diffusion.training_loss(model, torch.zeros(16, 1, 2, 2), generator=g)
    ts = torch.cat([t for t, _, _ in model.calls])
    assert ts.dtype == torch.int64 and ts.shape == (320,)
    assert ts.min().item() == 0 and ts.max().item() == 19  # 320 draws from 20 values hit both ends
    with pytest.raises(ValueError, match="model returned shape"):
        diffusion.training_loss(lambda x, t: x[:, :0], torch.zeros(2, 1, 2, 2))


# --------------------------------------------------------------------------------------------------
# noise sources


class OnesNoise:
    """A deterministic 'noise' source that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def sample(self, shape, *, generator, device, dtype) -> Tensor:
        self.calls += 1
        return torch.ones(shape, device=device, dtype=dtype)


def test_gaussian_noise_uses_generator_and_target_dtype() -> None:
    source = GaussianNoise()
    assert isinstance(source, NoiseSource)
    a = source.sample((3, 4), generator=torch.Generator().manual_seed(1), device="cpu", dtype=torch.float64)
    b = source.sample((3, 4), generator=torch.Generator().manual_seed(1), device="cpu", dtype=torch.float64)
    assert a.dtype == torch.float64 and a.shape == (3, 4) and torch.equal(a, b)
    big = source.sample(
        (20000,), generator=torch.Generator().manual_seed(2), device="cpu", dtype=torch.float32
    )
    assert abs(big.mean().item()) < 0.03 and abs(big.std().item() - 1) < 0.03


def test_custom_noise_source_drives_the_forward_process() -> None:
    s = make_schedule("cosine", 10)
    source = OnesNoise()
    diffusion = GaussianDiffusion(s, noise=source)
    seen: list[Tensor] = []

    def model(x_t: Tensor, t: Tensor) -> Tensor:
        seen.append(x_t)
        return torch.ones_like(x_t)  # predicts the (constant) noise exactly

    x0 = torch.full((2, 1, 2, 2), 0.5)
    assert diffusion.training_loss(model, x0, t=torch.tensor([0, 9])).item() == 0.0
    assert source.calls == 1
    abar = s.alphas_cumprod[9].item()
    assert torch.allclose(seen[0][1], torch.full((1, 2, 2), math.sqrt(abar) * 0.5 + math.sqrt(1 - abar)))


def test_faulty_noise_source_is_reported() -> None:
    class WrongShape:
        def sample(self, shape, *, generator, device, dtype) -> Tensor:
            return torch.zeros(1)

    diffusion = GaussianDiffusion(make_schedule("cosine", 10), noise=WrongShape())
    with pytest.raises(NoiseSourceError, match="expected shape"):
        diffusion.training_loss(lambda x, t: x, torch.zeros(2, 1, 2, 2))


# --------------------------------------------------------------------------------------------------
# EMA


def test_ema_decay_values() -> None:
    assert ema_decay(109) == pytest.approx(0.769, abs=5e-4)
    assert ema_decay(199) == pytest.approx(0.953, abs=5e-4)
    assert ema_decay(999) == pytest.approx(0.989, abs=5e-4)
    assert ema_decay(2928) < 0.995 and ema_decay(2929) == 0.995 and ema_decay(3000) == 0.995
    assert ema_decay(101) == 0.0  # 1 - 1^(-2/3)
    assert ema_decay(109, warmup_steps=50, max_decay=0.5, power=1.0) == 0.5


def _set_params(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_ema_warmup_copy_then_sparse_updates() -> None:
    model = TinyEps()
    ema = EMA(model)
    for step in range(100):  # warm-up: the shadow follows the model exactly
        _set_params(model, float(step))
        assert ema.update(model, step) == 0.0
        assert all(torch.equal(p, torch.full_like(p, float(step))) for p in ema.shadow.parameters())
    _set_params(model, 500.0)
    for step in range(100, 109):  # (step + 1) % 10 != 0: nothing happens
        assert ema.update(model, step) is None
    assert all(torch.equal(p, torch.full_like(p, 99.0)) for p in ema.shadow.parameters())
    decay = ema.update(model, 109)
    assert decay == pytest.approx(ema_decay(109))
    expected = decay * 99.0 + (1 - decay) * 500.0
    assert all(torch.allclose(p, torch.full_like(p, expected)) for p in ema.shadow.parameters())


def test_ema_copies_buffers_and_shadow_is_frozen_eval_copy() -> None:
    model = TinyEps().train()
    ema = EMA(model, warmup_steps=0, update_every=1)
    assert not ema.shadow.training and not any(p.requires_grad for p in ema.shadow.parameters())
    model(torch.randn(4, 1, 3, 3) * 3 + 2, torch.zeros(4, dtype=torch.long))  # moves BatchNorm statistics
    _set_params(model, 1.0)
    ema.update(model, 500)
    assert torch.equal(ema.shadow.norm.running_mean, model.norm.running_mean)
    assert torch.equal(ema.shadow.norm.num_batches_tracked, model.norm.num_batches_tracked)
    assert not torch.equal(ema.shadow.conv.weight, model.conv.weight)  # averaged, not copied
    _set_params(model, 7.0)
    assert not torch.equal(ema.shadow.conv.weight, model.conv.weight)  # an independent copy


def test_ema_state_dict_roundtrip_and_checks() -> None:
    model = TinyEps()
    ema = EMA(model)
    _set_params(model, 3.0)
    ema.update(model, 0)
    restored = EMA(TinyEps())
    restored.load_state_dict(ema.state_dict())
    assert all(torch.equal(p, torch.full_like(p, 3.0)) for p in restored.shadow.parameters())
    with pytest.raises(ValueError, match="update_every"):
        EMA(TinyEps(), update_every=5).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="does not match the EMA shadow"):
        ema.update(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="update_every"):
        EMA(model, update_every=0)


# --------------------------------------------------------------------------------------------------
# samplers


@pytest.mark.parametrize(
    "sampler_factory",
    [
        lambda s: DDPMSampler(s),
        lambda s: DDIMSampler(s, steps=5),
        lambda s: DDIMSampler(s, steps=7, eta=0.5, clip_x0=False),
    ],
)
def test_sampler_shape_dtype_and_determinism(sampler_factory) -> None:
    s = make_schedule("cosine", 20)
    sampler = sampler_factory(s)
    assert isinstance(sampler, Sampler)
    torch.manual_seed(0)
    model = TinyEps(channels=2)
    a = sampler.sample(model, (3, 2, 4, 4), generator=torch.Generator().manual_seed(5))
    b = sampler.sample(model, (3, 2, 4, 4), generator=torch.Generator().manual_seed(5))
    c = sampler.sample(model, (3, 2, 4, 4), generator=torch.Generator().manual_seed(6))
    assert a.shape == (3, 2, 4, 4) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = sampler.sample(
        model.double(), (1, 2, 3, 3), generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    assert d.dtype == torch.float64


def test_sampler_calls_model_in_eval_no_grad_and_restores_modes() -> None:
    s = make_schedule("cosine", 12)
    model = TinyEps().train()
    model.norm.eval()  # a mixed state must survive sampling
    DDPMSampler(s).sample(model, (2, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    assert [int(t[0]) for t, _, _ in model.calls] == list(range(11, -1, -1))
    assert all(t.dtype == torch.int64 and t.shape == (2,) for t, _, _ in model.calls)
    assert not any(training or grad for _, training, grad in model.calls)
    assert model.training and model.conv.training and not model.norm.training

    model.calls.clear()
    ddim = DDIMSampler(s, steps=4)
    ddim.sample(model, (2, 1, 3, 3), generator=torch.Generator().manual_seed(0), progress=True)
    assert [int(t[0]) for t, _, _ in model.calls] == ddim.timesteps()


def test_ddpm_draws_noise_only_for_t_above_zero() -> None:
    source = OnesNoise()
    DDPMSampler(make_schedule("cosine", 15), noise=source).sample(
        lambda x, t: torch.zeros_like(x), (1, 1, 2, 2)
    )
    assert source.calls == 1 + 14  # x_T, then one draw per step t = 14..1
    source = OnesNoise()
    DDIMSampler(make_schedule("cosine", 15), steps=5, noise=source).sample(
        lambda x, t: torch.zeros_like(x), (1, 1, 2, 2)
    )
    assert source.calls == 1  # eta = 0: only x_T


def test_ddim_timesteps_spacing() -> None:
    T = 50
    s = make_schedule("cosine", T)
    for steps in range(2, T + 1):
        ts = DDIMSampler(s, steps=steps).timesteps()
        assert len(ts) == steps and ts[0] == T - 1 and ts[-1] == 0
        assert all(a > b for a, b in itertools.pairwise(ts))
        gaps = [a - b for a, b in itertools.pairwise(ts)]
        assert max(gaps) - min(gaps) <= 1  # evenly spaced up to rounding
    assert DDIMSampler(s, steps=1).timesteps() == [T - 1]
    assert DDIMSampler(s, steps=T).timesteps() == list(range(T - 1, -1, -1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 21}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"eta": -0.1}, "eta"),
        ({"eta": 1.5}, "eta"),
        ({"eta": float("nan")}, "eta"),
    ],
)
def test_ddim_rejects_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DDIMSampler(make_schedule("cosine", 20), **({"steps": 5} | kwargs))


def test_ddim_full_steps_eta_one_matches_ddpm() -> None:
    s = make_schedule("cosine", 30)
    torch.manual_seed(1)
    model = TinyEps().double()
    shape = (4, 1, 3, 3)
    ddpm = DDPMSampler(s).sample(
        model, shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    ddim = DDIMSampler(s, steps=30, eta=1.0).sample(
        model, shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    assert torch.allclose(ddpm, ddim, atol=1e-9)
    ddim_det = DDIMSampler(s, steps=30, eta=0.0).sample(
        model, shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    assert not torch.allclose(ddpm, ddim_det, atol=1e-3)  # eta does matter


@pytest.mark.parametrize(
    "sampler_factory",
    [
        lambda s: DDIMSampler(s, steps=10),
        lambda s: DDIMSampler(s, steps=3, eta=0.5),
        lambda s: DDPMSampler(s),
    ],
)
def test_point_mass_oracle_walks_the_forward_marginals_and_returns_the_clipped_image(sampler_factory) -> None:
    """With the exact eps of data that is always c, every x_t a sampler visits must be distributed as the
    forward process puts it, N(sqrt(abar_t) c, 1 - abar_t) (for any eta); with eta = 0 each sample keeps its
    noise direction exactly. The output is the final x0 prediction clipped to [-1, 1]: c where c is in
    range, +-1 where it is not."""
    s = make_schedule("cosine", 40)
    c = torch.linspace(-0.9, 0.9, 9).reshape(1, 3, 3)
    sampler = sampler_factory(s)
    oracle = point_mass_oracle(s, c)
    visited: list[tuple[int, Tensor]] = []

    def recording(x: Tensor, t: Tensor) -> Tensor:
        visited.append((int(t[0]), x.clone()))
        return oracle(x, t)

    out = sampler.sample(recording, (2000, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, c.expand_as(out), atol=1e-4)
    directions = []
    for t, x in visited:
        abar = s.alphas_cumprod[t].item()
        z = (x - math.sqrt(abar) * c) / math.sqrt(1 - abar)
        assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05, f"t={t}: {z.mean()}, {z.std()}"
        directions.append(z)
    if getattr(sampler, "eta", 1.0) == 0.0:
        assert all(torch.allclose(z, directions[0], atol=1e-3) for z in directions)
    wide = 2 * c  # x0 predictions out of [-1, 1] in 4 of the 9 pixels
    out = sampler.sample(point_mass_oracle(s, wide), (5, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, wide.clamp(-1, 1).expand_as(out), atol=1e-4)


@pytest.mark.parametrize(
    "sampler_factory",
    [
        lambda s: DDPMSampler(s),
        lambda s: DDIMSampler(s, steps=10),
        lambda s: DDIMSampler(s, steps=10, eta=1.0),
    ],
)
def test_mixture_oracle_reproduces_modes_and_their_weights(sampler_factory) -> None:
    s = make_schedule("cosine", 50)
    modes = torch.stack([torch.full((1, 2, 2), 0.6), torch.full((1, 2, 2), -0.5)]).double()
    weights = torch.tensor([0.75, 0.25], dtype=torch.float64)
    out = sampler_factory(s).sample(
        mixture_oracle(s, modes, weights),
        (2000, 1, 2, 2),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    dist = (out.unsqueeze(1) - modes.unsqueeze(0)).abs().flatten(2).amax(-1)  # (N, 2)
    assert dist.min(dim=1).values.max().item() < 1e-3  # every sample sits on a mode
    share_first = (dist[:, 0] < dist[:, 1]).double().mean().item()
    assert share_first == pytest.approx(0.75, abs=0.05)  # 5 binomial standard deviations


def test_make_sampler_by_name() -> None:
    s = make_schedule("cosine", 20)
    assert isinstance(make_sampler("ddpm", s), DDPMSampler)
    ddim = make_sampler("ddim", s, steps=4, eta=0.3)
    assert isinstance(ddim, DDIMSampler) and ddim.steps == 4 and ddim.eta == 0.3
    with pytest.raises(UnknownNameError, match="unknown sampler 'euler'; choose one of ddpm, ddim"):
        make_sampler("euler", s)
    with pytest.raises(ValueError, match="shape"):
        DDPMSampler(s).sample(lambda x, t: x, (0, 1, 2, 2))


def test_sampler_names_and_settings_come_from_what_each_sampler_takes() -> None:
    """Reports, CSV labels and reproduce command lines show a sampler's options only if it takes them."""
    assert sampler_options("ddpm", steps=100, eta=0.5) == {}
    assert sampler_options("ddim", steps=100, eta=0.5) == {"steps": 100, "eta": 0.5}
    assert sampler_label("ddpm", 1000) == "ddpm" and sampler_label("ddim", 100) == "ddim100"
    assert sampler_description("ddpm", 1000, 0.0) == "DDPM (every timestep)"
    assert sampler_description("ddim", 100, 0.0) == "DDIM, 100 steps, eta 0.0"
