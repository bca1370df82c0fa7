"""Stand-ins for the pytest objects the Allure augmenter reads (an item's rule markers, a report)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeMark:
    args: tuple[str, ...]


@dataclass
class FakeItem:
    nodeid: str
    rules: tuple[str, ...]

    def iter_markers(self, name: str) -> list[FakeMark]:
        return [FakeMark(self.rules)] if name == "rule" else []


@dataclass
class FakeReport:
    skipped: bool = False
    failed: bool = False
