"""``python -m objdet``: the same program as the ``objdet`` command."""

import sys

from objdet.cli import main

sys.exit(main())
