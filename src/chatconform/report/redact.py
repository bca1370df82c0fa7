"""Secret scrubbing for everything the report package writes.

summary.json and the findings' evidence are already redacted by value (each configured key is
replaced by the name of its environment variable). Report writers pass every text they write
through `scrub`, which also masks anything shaped like a Flowyte key, so that a key the harness was
not told about (e.g. one echoed back by a server) never lands in a report either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# flowyte_sk_live_…, flowyte_sk_test_…, flowyte_pk_…: mask key-shaped tokens long enough to be real
_KEY_SHAPED = re.compile(r"\b(flowyte_(?:sk|pk)_(?:live_|test_)?)[A-Za-z0-9_\-]{16,}")


def scrub(text: str, secrets: Iterable[tuple[str, str]] = ()) -> str:
    """`text` with each secret value replaced by `$NAME`, and key-shaped tokens masked."""
    for name, value in secrets:
        if value and value in text:
            text = text.replace(value, f"${name}")
    return _KEY_SHAPED.sub(r"\1[redacted]", text)
