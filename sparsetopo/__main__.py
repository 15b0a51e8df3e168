"""``python -m sparsetopo``: the ``sparsetopo`` command."""

from sparsetopo.cli import main

main()
