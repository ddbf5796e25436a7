"""``python -m llmlib``: see :mod:`llmlib.cli`."""

import sys

from llmlib.cli import main

sys.exit(main())
