"""``python -m hqdm``: the same command line as the ``hqdm`` script."""

import sys

from hqdm.cli import main

sys.exit(main())
