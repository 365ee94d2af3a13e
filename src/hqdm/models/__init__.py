"""Denoising U-Nets: the paper's classical U-Net and the hybrid QVU-Net / QuanvU-Net variants."""

from hqdm.models.registry import build_model, count_parameters, format_model_table, list_models
from hqdm.models.unet import SUPPORTED_IMAGE_SIZES, UNet
from hqdm.quantum import SEMANTICS  # one list of names for the quantum layers and the models

__all__ = [
    "SEMANTICS",
    "SUPPORTED_IMAGE_SIZES",
    "UNet",
    "build_model",
    "count_parameters",
    "format_model_table",
    "list_models",
]
