"""Event-stream bytes: frame encoding and delivery, with the wire variations.

Variations change only the bytes, never the meaning: line ends (crlf, cr), no space after the
colon (nospace), JSON split over several ``data:`` lines (split-data), a leading BOM (bom), comment
lines (keepalive), unknown JSON fields (extra, via :mod:`jsonio`) and tiny writes (dribble).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

from chatconform.reference.faults import Switches
from chatconform.reference.jsonio import dumps

BOM = b"\xef\xbb\xbf"


class FrameEncoder:
    """Encodes SSE frames per the switched-on variations."""

    def __init__(self, switches: Switches) -> None:
        self._switches = switches
        if switches.has("crlf"):
            self.eol = "\r\n"
        elif switches.has("cr"):
            self.eol = "\r"
        else:
            self.eol = "\n"
        self._sep = ":" if switches.has("nospace") else ": "
        self._split = switches.has("split-data")

    def frame(self, event: str | None, data: Any, blank_line: bool = True) -> bytes:
        """One frame: optional ``event:`` line, ``data:`` line(s) (``data`` JSON unless a str)."""
        lines: list[str] = []
        if event is not None:
            lines.append(f"event{self._sep}{event}")
        if isinstance(data, str):
            texts = [data]
        else:
            texts = dumps(data, self._switches, indent=1 if self._split else None).split("\n")
        lines.extend(f"data{self._sep}{text}" for text in texts)
        end = self.eol * 2 if blank_line else self.eol
        return (self.eol.join(lines) + end).encode("utf-8")

    def keepalive(self) -> bytes:
        """A comment line (and a blank line), or nothing unless ``keepalive`` is on."""
        if not self._switches.has("keepalive"):
            return b""
        return (": keep-alive" + self.eol * 2).encode("utf-8")


def _pieces(chunk: bytes, rng: random.Random, split_char: list[bool]) -> list[bytes]:
    """``chunk`` cut into 1-7 byte writes; the first multi-byte character met is cut in two."""
    out: list[bytes] = []
    i = 0
    while i < len(chunk):
        size = rng.randint(1, 7)
        if not split_char[0]:
            lead = next((j for j in range(i, min(i + 7, len(chunk))) if chunk[j] >= 0xC0), None)
            if lead is not None:
                size = lead - i + 1
                split_char[0] = True
        out.append(chunk[i : i + size])
        i += size
    return out


async def deliver(
    frames: AsyncIterator[bytes], switches: Switches, buffered: bool = False
) -> AsyncIterator[bytes]:
    """The body writes for ``frames``: BOM first if on, then per frame (one write if buffered)."""
    first = True
    held: list[bytes] = []
    rng = random.Random(0x5EED)
    split_char = [False]
    async for chunk in frames:
        if first and switches.has("bom"):
            chunk = BOM + chunk
        first = False
        if not chunk:
            continue
        if buffered:
            held.append(chunk)
        elif switches.has("dribble"):
            for piece in _pieces(chunk, rng, split_char):
                yield piece
                await asyncio.sleep(0)  # each piece leaves as its own write (TCP_NODELAY)
        else:
            yield chunk
    if held:
        yield b"".join(held)
    elif first and switches.has("bom"):
        yield BOM
