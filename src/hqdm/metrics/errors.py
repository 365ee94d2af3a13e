"""Named exceptions for metric problems, so callers can tell a missing network from a bad input."""


class MetricsError(Exception):
    """Base class of every problem raised by ``hqdm.metrics``."""


class FIDWeightsNotFoundError(MetricsError, FileNotFoundError):
    """The FID Inception TorchScript file is not where it was looked for."""


class FIDWeightsHashError(MetricsError):
    """The FID Inception file exists but has the wrong SHA-1 (corrupt, or a different network)."""


class ImageInputError(MetricsError, ValueError):
    """Images passed to a metric have the wrong dtype, rank, channel count or shape."""
