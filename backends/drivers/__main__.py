"""`python -m backends.drivers --packages [--tests]`: the Debian packages the pool types
need, as their drivers declare them, one per line (what `make test` installs)."""

from __future__ import annotations

import argparse

from . import features, pool_types


def packages(with_tests: bool) -> list[str]:
    found: set[str] = set()
    for pool_type in pool_types():
        have = features(pool_type)
        found.update(have.packages)
        if with_tests:
            found.update(have.test_packages)
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m backends.drivers")
    parser.add_argument("--packages", action="store_true", required=True,
                        help="print the Debian packages the pool types need")
    parser.add_argument("--tests", action="store_true",
                        help="also those their tests need (the servers they start)")
    args = parser.parse_args()
    print("\n".join(packages(args.tests)))


if __name__ == "__main__":
    main()
