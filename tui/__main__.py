"""`python -m tui`: the same as the `poolkeeper` command (cli.main), which runs a CLI verb
when given one and opens the TUI when given none."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
