"""`python -m cli`: the same as the `poolkeeper` command."""

import sys

from .main import main

sys.exit(main())
