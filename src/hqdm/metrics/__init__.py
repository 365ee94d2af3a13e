"""hqdm.metrics: FID, KID, IS and SSIM for generated images, with the offline FID Inception network.

See docs/metrics.md for the network, the exact preprocessing, caching and metric definitions.
"""

from hqdm.metrics.batches import PrecomputedFeatures, iter_image_batches
from hqdm.metrics.cache import default_cache_dir, real_features, real_images_key
from hqdm.metrics.errors import FIDWeightsHashError, FIDWeightsNotFoundError, ImageInputError, MetricsError
from hqdm.metrics.evaluate_images import METRIC_NAMES, evaluate_images
from hqdm.metrics.inception import FIDInceptionFeatures, InceptionClassifier, InceptionPreprocess
from hqdm.metrics.resize import RESIZE_MODES, TF1_BILINEAR, TORCH_BILINEAR, resize_images, resize_tf1_bilinear
from hqdm.metrics.scores import fid_from_features, inception_score_from_logits, kid_from_features
from hqdm.metrics.ssim import NearestRealSSIM
from hqdm.metrics.weights import FID_WEIGHTS_ENV, FID_WEIGHTS_SHA1, resolve_fid_weights

__all__ = [
    "FID_WEIGHTS_ENV",
    "FID_WEIGHTS_SHA1",
    "METRIC_NAMES",
    "RESIZE_MODES",
    "TF1_BILINEAR",
    "TORCH_BILINEAR",
    "FIDInceptionFeatures",
    "FIDWeightsHashError",
    "FIDWeightsNotFoundError",
    "ImageInputError",
    "InceptionClassifier",
    "InceptionPreprocess",
    "MetricsError",
    "NearestRealSSIM",
    "PrecomputedFeatures",
    "default_cache_dir",
    "evaluate_images",
    "fid_from_features",
    "inception_score_from_logits",
    "iter_image_batches",
    "kid_from_features",
    "real_features",
    "real_images_key",
    "resize_images",
    "resize_tf1_bilinear",
    "resolve_fid_weights",
]
