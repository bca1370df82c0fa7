"""``python -m chatconform.reference``: run the reference server."""

from chatconform.reference.cli import main

raise SystemExit(main())
