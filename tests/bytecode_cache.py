"""Loaded first (`-p bytecode_cache` in pyproject's addopts): the self-tests cache bytecode.

Where the environment sets PYTHONDONTWRITEBYTECODE, every pytest worker and every one of the
~200 `chatconform` processes the self-tests start would compile its modules from source again, and
pytest would re-rewrite the assertions of every installed plugin's package (Hypothesis,
Schemathesis, locust ...) in each worker: 10.5 s of CPU to collect the tests instead of 4.9 s.
This plugin runs before those imports (a `-p` plugin loads before the entry-point plugins) and
lets this process and its children write their caches (`__pycache__/`, git-ignored).
"""

from __future__ import annotations

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
