"""`python -m cli`: the same as the `poolkeeper` command."""

import sys

from .entry import main

sys.exit(main())
