"""A stream the run gave its full deadline and that still did not end breaks the termination rule of
its endpoint (SSE-5 for a session's messages, OAI-4 for /chat/completions), whichever test sent it.

After such a stream the run knows the target's streams do not end (chatconform.budget) and abandons
the later ones (ERROR, not judged); under --concurrency that knowledge is shared by every worker. The
FAIL must then come from that first stream, and the test that happened to send it (the flush-timing
test, which runs first and alone under xdist; a history test; ...) may aim at another rule. The
plugin adds this finding on any test's exchange, unless the test already found the rule broken on it,
so that the verdicts do not depend on which test, in which worker, met the stream first.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from chatconform.checks.common import finding
from chatconform.checks.errors import asked_stream
from chatconform.record import Exchange
from chatconform.verdicts import Outcome, judged

_MESSAGES = re.compile(r"/chat/sessions/[^/]+/messages$")
EXPECTED = {
    "SSE-5": "the stream to end (its terminal frame, then the server closes the response)",
    "OAI-4": "the stream to end (data: [DONE], then the server closes the response)",
}


def termination_rule(ex: Exchange) -> str | None:
    """The rule that says how a stream of this endpoint ends (None: not a streaming endpoint)."""
    if ex.method.upper() != "POST":
        return None
    path = urlsplit(ex.url).path.rstrip("/")
    if _MESSAGES.search(path):
        return "SSE-5"
    return "OAI-4" if path.endswith("/chat/completions") else None


def unended(ex: Exchange) -> Outcome:
    """The termination finding on a stream the run stopped reading at its own bound (the deadline,
    or no byte for the read timeout), given in full, or on a request for a stream whose response
    did not even start in that time: nothing for an abandoned stream (ERROR), one the client
    dropped on purpose, one over the byte cap, or one that ended."""
    if not ex.timed_out or ex.unjudged:
        return Outcome()
    rule = termination_rule(ex)
    if rule is None:
        return Outcome()
    if ex.stream is not None and ex.stream.ended_by == "timeout":
        got = f"{len(ex.stream.events)} events, then the run stopped reading: {ex.error}"
    elif ex.stream is None and ex.status is None and asked_stream(ex):
        got = f"no response to a request for a stream: {ex.error}"
    else:
        return Outcome()
    return judged([finding(rule, EXPECTED[rule], got, ex)], rule)
