"""``python -m fastpolicy ...`` runs the ``fastpolicy`` command line."""

import sys

from .cli import main

sys.exit(main())
