"""``python -m aimctrl``: the same as the ``aimctrl`` console script."""

from aimctrl.cli import main

raise SystemExit(main())
