"""What the timing-based checks saw, said in words: the gaps between a stream's deltas (SSE-8), how
long concurrent posts overlapped (MSG-6), when a stream was dropped and the session answered again
(MSG-7). A failing finding carries the text in its `got`; a passing test adds it as a note (level I),
so a timing verdict can be read, and argued with, from the report alone."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from chatconform.record import Exchange
from chatconform.sse import Event
from chatconform.verdicts import Finding

MAX_GAPS_SHOWN = 12


def gaps_ms(events: Sequence[Event]) -> list[float]:
    """The time between consecutive events' arrival, in ms."""
    return [(b.t_ns - a.t_ns) / 1e6 for a, b in itertools.pairwise(events)]


def gaps_text(deltas: Sequence[Event]) -> str:
    """'gaps between deltas (ms): 1.50, 1.70, ...'"""
    gaps = gaps_ms(deltas)
    shown = ", ".join(f"{g:.2f}" for g in gaps[:MAX_GAPS_SHOWN])
    if len(gaps) > MAX_GAPS_SHOWN:
        shown += f", … ({len(gaps) - MAX_GAPS_SHOWN} more; largest {max(gaps):.2f})"
    return f"gaps between deltas (ms): {shown or 'none'}"


def flush_timing(deltas: Sequence[Event]) -> str:
    """'8 deltas over 12.40 ms in 8 read(s); gaps between deltas (ms): 1.50, 1.70, ...'"""
    if not deltas:
        return "no delta arrived"
    spread = (deltas[-1].t_ns - deltas[0].t_ns) / 1e6
    reads = len({e.read_index for e in deltas})
    return f"{len(deltas)} deltas over {spread:.2f} ms in {reads} read(s); {gaps_text(deltas)}"


def _span_ms(ex: Exchange, origin: int) -> tuple[float, float]:
    end = ex.t_end_ns if ex.t_end_ns is not None else ex.t_start_ns
    return (ex.t_start_ns - origin) / 1e6, (end - origin) / 1e6


def overlap_timing(posts: Sequence[tuple[str, Exchange]]) -> str:
    """'plain post 0.0-14.2 ms (200), streamed post 0.3-31.0 ms (409); overlapped 13.9 ms',
    times from the first post's start."""
    if not posts:
        return "no post was sent"
    origin = min(ex.t_start_ns for _, ex in posts)
    spans = [(label, *_span_ms(ex, origin), ex.status) for label, ex in posts]
    parts = [
        f"{label} {a:.1f}-{b:.1f} ms ({status or 'no answer'})" for label, a, b, status in spans
    ]
    text = ", ".join(parts)
    if len(spans) == 2:
        (_, a0, b0, _), (_, a1, b1, _) = spans
        both = min(b0, b1) - max(a0, a1)
        if both > 0:
            text += f"; overlapped {both:.1f} ms"
        else:
            text += f"; did not overlap (the second started {-both:.1f} ms after the first ended)"
    return text


def drop_timing(dropped: Exchange, events: int, follow: Exchange | None, busy: int) -> str:
    """'dropped after 2 events, 35 ms into the stream; the follow-up post answered 200 after 40 ms
    (1 session_busy retry)'"""
    start, end = _span_ms(dropped, dropped.t_start_ns)
    text = f"dropped after {events} events, {end - start:.0f} ms into the stream"
    if follow is not None and dropped.t_end_ns is not None:
        after = ((follow.t_end_ns or follow.t_start_ns) - dropped.t_end_ns) / 1e6
        text += (
            f"; the follow-up post answered {follow.status or 'nothing'} {after:.0f} ms after the "
            f"drop ({busy} session_busy retr{'y' if busy == 1 else 'ies'})"
        )
    return text


def timing_note(rule: str, text: str, clause: str | None = None) -> Finding:
    """A note (level I, never a verdict) of the timing a passing check saw."""
    return Finding(rule, "(timing seen)", text[:500], level="I", clause=clause)
