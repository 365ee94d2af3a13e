"""Contracts every registered model, sampler and noise schedule keeps.

The cases come from the registries themselves (``list_models``, ``available_samplers``,
``available_schedules``), so whatever is registered next is held to the same contracts without editing
this file. Small batches, tiny stand-ins for the sampler's model and few steps keep the file fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from conftest import TinyEps, eps_inputs
from hqdm.diffusion import (
    available_samplers,
    available_schedules,
    make_sampler,
    make_schedule,
    sampler_options,
)
from hqdm.models import SEMANTICS, build_model, count_parameters, format_model_table, list_models
from hqdm.models.pretrained import load_pretrained, save_pretrained

# --- models ----------------------------------------------------------------------------------------


@dataclass
class Built:
    """A registered model, built once per (name, semantics) for every model contract, with one output."""

    name: str
    model: nn.Module
    inputs: tuple[Tensor, Tensor]
    output: Tensor


@pytest.fixture(
    scope="module",
    params=[(name, semantics) for name in list_models() for semantics in SEMANTICS],
    ids=lambda case: "-".join(case),
)
def built(request: pytest.FixtureRequest) -> Built:
    name, semantics = request.param
    torch.manual_seed(0)
    model = build_model(name, semantics=semantics).eval()
    x, t = eps_inputs((3, 800))  # a small batch: one early and one late timestep
    with torch.no_grad():
        output = model(x, t)
    return Built(name, model, (x, t), output)


@pytest.fixture(scope="module")
def reported_counts() -> dict[str, tuple[int, int, int]]:
    """(total, classical, quantum) of every model, read from the table ``hqdm models`` prints."""
    counts = {}
    for line in format_model_table().splitlines()[2:]:  # after the header and its rule
        if not line.strip():
            break  # the notes follow the rows
        name, total, classical, quantum, _ = line.split()
        counts[name] = tuple(int(n.replace(",", "")) for n in (total, classical, quantum))
    return counts


def test_model_output_has_the_shape_of_its_input(built: Built) -> None:
    x, _ = built.inputs
    assert built.output.shape == x.shape and built.output.dtype == x.dtype
    assert torch.isfinite(built.output).all()


def test_model_pretrained_round_trip_gives_the_same_outputs(built: Built, tmp_path: Path) -> None:
    diffusion = {"schedule": "cosine", "num_timesteps": 1000}
    folder = save_pretrained(built.model, tmp_path / built.name, diffusion=diffusion)
    loaded = load_pretrained(folder)
    assert loaded.spec == built.model.spec and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(*built.inputs), built.output)


def test_model_parameter_count_is_the_one_hqdm_models_reports(
    built: Built, reported_counts: dict[str, tuple[int, int, int]]
) -> None:
    total = sum(p.numel() for p in built.model.parameters())
    assert (total, *count_parameters(built.model)) == reported_counts[built.name]


# --- samplers --------------------------------------------------------------------------------------

SAMPLER_T = 20  # DDPM visits every timestep; DDIM takes SAMPLER_SETTINGS["steps"] of them
SAMPLER_SETTINGS = {"steps": 5, "eta": 0.5}  # eta > 0: DDIM draws fresh noise at every step too


def _draw(kind: str, seed: int, global_seed: int = 0) -> Tensor:
    """A batch of ``kind`` from a fixed tiny model, drawn with a generator seeded with ``seed`` while the
    global RNG is seeded with ``global_seed`` (restored afterwards)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyEps(SAMPLER_T)
        schedule = make_schedule("cosine", SAMPLER_T)
        sampler = make_sampler(kind, schedule, **sampler_options(kind, **SAMPLER_SETTINGS))
        torch.manual_seed(global_seed)
        return sampler.sample(model, (2, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", available_samplers())
def test_sampler_is_deterministic_under_a_seed(kind: str) -> None:
    """Only the seed decides: the global RNG (which a careless sampler would draw from) does not."""
    assert torch.equal(_draw(kind, seed=3, global_seed=1), _draw(kind, seed=3, global_seed=2))


@pytest.mark.parametrize("kind", available_samplers())
def test_sampler_output_is_finite_and_in_range(kind: str) -> None:
    images = _draw(kind, seed=3)
    assert images.shape == (2, 1, 8, 8)
    assert torch.isfinite(images).all() and images.abs().max() <= 1


@pytest.mark.parametrize("kind", available_samplers())
def test_sampler_output_depends_on_the_seed(kind: str) -> None:
    assert not torch.equal(_draw(kind, seed=3), _draw(kind, seed=4))


# --- noise schedules -------------------------------------------------------------------------------

#: Options for schedules that cannot be built from a length alone. A new schedule that needs some fails
#: below with "bad options" until its entry is added here.
REQUIRED_OPTIONS: dict[str, Callable[[int], dict[str, object]]] = {
    "custom": lambda num_timesteps: {"betas": torch.linspace(1e-4, 0.02, num_timesteps)},
}
LENGTHS = (50, 1000)  # a short schedule and the paper's


def _schedule(kind: str, num_timesteps: int) -> Tensor:
    options = REQUIRED_OPTIONS.get(kind, lambda _: {})(num_timesteps)
    return make_schedule(kind, num_timesteps, **options).alphas_cumprod


@pytest.mark.parametrize("num_timesteps", LENGTHS)
@pytest.mark.parametrize("kind", available_schedules())
def test_schedule_has_one_alpha_cumprod_per_timestep(kind: str, num_timesteps: int) -> None:
    assert _schedule(kind, num_timesteps).shape == (num_timesteps,)


@pytest.mark.parametrize("num_timesteps", LENGTHS)
@pytest.mark.parametrize("kind", available_schedules())
def test_schedule_alphas_cumprod_decrease_within_zero_to_one(kind: str, num_timesteps: int) -> None:
    alphas_cumprod = _schedule(kind, num_timesteps)
    assert (alphas_cumprod > 0).all() and (alphas_cumprod <= 1).all()
    assert (alphas_cumprod.diff() < 0).all()
