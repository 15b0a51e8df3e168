"""The ``sparsetopo`` command (console script and ``python -m sparsetopo``)."""

from __future__ import annotations


def main() -> None:
    """The ``sparsetopo`` console script."""
    from sparsetopo.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
