"""`python -m cli`: the same as the `poolkeeper` command."""

from .entry import run

run()
