"""Diffusion machinery: noise schedules, the forward process and its loss, EMA, samplers, noise sources.

The model, the schedule and the sampler are separate objects: a sampler or a noise source can be
swapped without touching the model.
"""

from .ema import EMA, ema_decay
from .noise import (
    NOISE_SOURCES,
    GaussianNoise,
    NoiseSource,
    NoiseSourceError,
    QuantumNoise,
    make_noise_source,
    sample_noise,
)
from .pipeline import PerImageNoise, SamplingPipeline, image_seed, to_uint8
from .process import EpsModel, GaussianDiffusion, p2_weights
from .samplers import (
    DDIMSampler,
    DDPMSampler,
    Sampler,
    StepSampler,
    available_samplers,
    make_sampler,
    sampler_description,
    sampler_label,
    sampler_options,
)
from .schedules import (
    DEFAULT_NUM_TIMESTEPS,
    InvalidScheduleError,
    NoiseSchedule,
    available_schedules,
    cosine_betas,
    custom_betas,
    linear_betas,
    make_schedule,
    register_schedule,
    small_data_betas,
)

__all__ = [
    "DEFAULT_NUM_TIMESTEPS",
    "EMA",
    "NOISE_SOURCES",
    "DDIMSampler",
    "DDPMSampler",
    "EpsModel",
    "GaussianDiffusion",
    "GaussianNoise",
    "InvalidScheduleError",
    "NoiseSchedule",
    "NoiseSource",
    "NoiseSourceError",
    "PerImageNoise",
    "QuantumNoise",
    "Sampler",
    "SamplingPipeline",
    "StepSampler",
    "available_samplers",
    "available_schedules",
    "cosine_betas",
    "custom_betas",
    "ema_decay",
    "image_seed",
    "linear_betas",
    "make_noise_source",
    "make_sampler",
    "make_schedule",
    "p2_weights",
    "register_schedule",
    "sample_noise",
    "sampler_description",
    "sampler_label",
    "sampler_options",
    "small_data_betas",
    "to_uint8",
]
