"""``python -m bmcore``: the command line (see :mod:`bmcore.cli`)."""

import sys

from bmcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
