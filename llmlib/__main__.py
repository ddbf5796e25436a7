"""``python -m llmlib``: the command line of :mod:`llmlib.cli` (also installed as ``llmlib``)."""

import sys

from llmlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
