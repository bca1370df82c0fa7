"""``python -m chatconform.load``: the ``chatconform load`` command on its own."""

from __future__ import annotations

from chatconform.interrupt import exit_module_main
from chatconform.load.cli import main

if __name__ == "__main__":
    exit_module_main(main())
