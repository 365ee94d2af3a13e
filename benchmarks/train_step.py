"""Forward + backward + Adam step at batch 128 for every registered model, as a ratio to the U-Net.

``python benchmarks/train_step.py [--help]`` is the same as ``hqdm bench train-step``.
"""

import sys

from hqdm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "train-step", *sys.argv[1:]]))
