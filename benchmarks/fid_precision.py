"""FID of MNIST train vs test (1000 vs 1000, the anchor sampling of docs/metrics.md) with the FID network in
fp32 and in bf16: is bf16 feature extraction accurate enough to replace fp32?

    OMP_WAIT_POLICY=passive python benchmarks/fid_precision.py --data-dir DIR

Prints the FID and KID of each precision, their relative difference and the seconds each extraction took.
No cache is read or written: both precisions see exactly the same 2,000 images.
"""

import argparse
import tempfile
import time

import torch

from hqdm.data import load_dataset
from hqdm.metrics import evaluate_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder holding the MNIST files")
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args()
    train = load_dataset(args.dataset, "train", data_dir=args.data_dir).images
    test = load_dataset(args.dataset, "test", data_dir=args.data_dir).images
    g = torch.Generator().manual_seed(0)
    train_perm, test_perm = torch.randperm(len(train), generator=g), torch.randperm(len(test), generator=g)
    real, other = train[train_perm[:1000]], test[test_perm[:1000]]
    results = {}
    for precision in ("fp32", "bf16"):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as cache:  # no cached features: both runs extract all 2,000
            results[precision] = evaluate_images(
                other, real, metrics=("fid", "kid"), cache_dir=cache, feature_precision=precision,
                seed=0, batch_size=100, progress=False,
            )  # fmt: skip
        seconds = time.perf_counter() - started
        r = results[precision]
        print(
            f"{precision}: FID {r['fid']:.4f}, KID {r['kid_mean']:.6f} ± {r['kid_std']:.6f}, {seconds:.0f} s"
        )
    fp32, bf16 = results["fp32"]["fid"], results["bf16"]["fid"]
    print(f"bf16 - fp32: {bf16 - fp32:+.4f} FID ({(bf16 - fp32) / fp32:+.2%} of the fp32 value)")


if __name__ == "__main__":
    main()
