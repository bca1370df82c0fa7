"""``python -m chatconform.load``: the ``chatconform load`` command on its own."""

from __future__ import annotations

import sys

from chatconform.load.cli import main

if __name__ == "__main__":
    sys.exit(main())
