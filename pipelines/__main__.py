"""``python -m quantgate.pipelines``: the same as the ``quantgate`` console script."""

import sys

from quantgate.pipelines.cli import main

sys.exit(main())
