"""hqdm: hybrid quantum-classical diffusion models."""

__version__ = "0.1.0"
