"""Server-Sent Events parser: byte-level, incremental, exact to WHATWG HTML §9.2.

Implements "parsing an event stream" and "interpreting an event stream" of the WHATWG HTML
standard (server-sent events), with the additions a conformance checker needs: every event is
stamped with the time and index of the read that completed it, and protocol problems (invalid
UTF-8, a final event without its blank line, an ``id`` containing NUL) are recorded in
``SSEParser.violations`` instead of being silently repaired.

Design (this is the load generator's hot path):

* Framing is done on bytes: a chunk is searched from the right for its last line terminator
  (``\\r`` or ``\\n``); everything up to it is a block of complete lines, the rest is kept as the
  start of the next line.  Only ``\\r`` and ``\\n`` end lines (U+2028, U+2029, U+0085 do not).
* The block of complete lines is UTF-8 decoded in one call.  Line terminators are ASCII, and no
  multi-byte UTF-8 sequence contains the bytes 0x0A or 0x0D, so decoding a block of whole lines
  gives exactly the same text (including U+FFFD replacements) as decoding the whole stream, or
  each line on its own; a character split across reads is never decoded in halves, because the
  incomplete line stays in bytes until its terminator arrives.
* A ``\\r`` that ends a chunk ends its line at once (so an event ending ``\\r\\r`` is dispatched by
  the read that carried it); a ``\\n`` starting the next chunk is then skipped, being the second
  half of a CRLF.  A bare CR right before EOF therefore needs no special handling in ``close``.
* One leading UTF-8 BOM (EF BB BF) is stripped at stream start, even when split across chunks.

``last_event_id`` follows the spec's two notions: the parser's *last event ID buffer* is set as
soon as a valid ``id`` field is processed (and is what ``Event.last_event_id`` carries), while
``SSEParser.last_event_id`` is the event source's *last event ID string*, which the spec sets
from the buffer when an event is dispatched (on every blank line, even one that dispatches
nothing because the data buffer is empty).  So the ``id`` of a final event without its blank
line is never applied to ``SSEParser.last_event_id``.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

__all__ = ["Event", "SSEParser", "parse"]

_BOM = b"\xef\xbb\xbf"
_MAX_VIOLATIONS = 1000
_SNIPPET = 80


@dataclass(slots=True, frozen=True)
class Event:
    """One dispatched event."""

    type: str
    """Event type; ``"message"`` when there was no ``event`` field or it was empty."""
    data: str
    """The data buffer with its final LF removed (``data`` values joined with LF)."""
    id: str | None
    """Value of the last valid ``id`` field in this event block; None if none (or only NUL ids)."""
    last_event_id: str
    """The parser's last event ID buffer when the event was dispatched."""
    event_field: bool
    """True if an ``event`` field line appeared in this event block (even an empty one)."""
    t_ns: int
    """The ``t_ns`` passed to the ``feed()`` call whose bytes completed this event."""
    read_index: int
    """0-based index of the ``feed()`` call that completed this event."""


# Events are built on the hot path without the frozen dataclass __init__ (which goes through
# object.__setattr__ once per field): the same object, about twice as fast to build.
_new = object.__new__
_set_type = Event.type.__set__  # type: ignore[attr-defined]
_set_data = Event.data.__set__  # type: ignore[attr-defined]
_set_id = Event.id.__set__  # type: ignore[attr-defined]
_set_last_event_id = Event.last_event_id.__set__  # type: ignore[attr-defined]
_set_event_field = Event.event_field.__set__  # type: ignore[attr-defined]
_set_t_ns = Event.t_ns.__set__  # type: ignore[attr-defined]
_set_read_index = Event.read_index.__set__  # type: ignore[attr-defined]


def _snippet(text: str) -> str:
    """Return ``repr(text)``, shortened for a violation message."""
    if len(text) > _SNIPPET:
        return repr(text[:_SNIPPET]) + "…"
    return repr(text)


class SSEParser:
    """Incremental WHATWG event-stream parser over raw bytes.

    Feed it the body's bytes as they arrive with :meth:`feed`; call :meth:`close` at EOF.
    It never raises on any input.
    """

    __slots__ = (
        "_block_id",
        "_bom_done",
        "_closed",
        "_data",
        "_event_field",
        "_fields",
        "_id_buf",
        "_parts",
        "_pos",
        "_skip_lf",
        "_type",
        "bytes_seen",
        "comments",
        "last_event_id",
        "pending_data",
        "pending_type",
        "reads",
        "retry",
        "unterminated",
        "violations",
    )

    retry: int | None
    last_event_id: str
    comments: int
    reads: int
    bytes_seen: int
    violations: list[str]
    unterminated: bool
    pending_data: str | None
    pending_type: str | None

    def __init__(self) -> None:
        self.retry = None
        """Last valid reconnection time (``retry`` field of ASCII digits), in ms."""
        self.last_event_id = ""
        """The event source's last event ID string (set from the buffer on each blank line)."""
        self.comments = 0
        """Number of comment lines (lines starting with ``:``) seen."""
        self.reads = 0
        """Number of ``feed()`` calls so far."""
        self.bytes_seen = 0
        """Total bytes passed to ``feed()``."""
        self.violations = []
        """Human-readable protocol problems, for strict checks."""
        self.unterminated = False
        """After close(): a pending event (a field line since the last blank line) was cut off."""
        self.pending_data = None
        """After close(): the data of that unterminated event, if it had any ``data`` line."""
        self.pending_type = None
        """After close(): the ``event`` field value of that unterminated event, if it had one."""
        self._parts: list[bytes] = []  # bytes of the current, incomplete line
        self._pos = 0  # absolute stream offset of the first byte of _parts
        self._skip_lf = False  # the last chunk ended in CR: skip one LF starting the next
        self._bom_done = False  # the stream start has been checked for a BOM
        self._closed = False
        self._data: list[str] = []  # data buffer, as the list of data values
        self._type = ""  # event type buffer
        self._id_buf = ""  # last event ID buffer
        self._block_id: str | None = None  # valid id seen in this event block
        self._event_field = False  # event field seen in this event block
        self._fields = False  # any field line seen since the last blank line

    # -- public API -----------------------------------------------------------------------

    def feed(self, chunk: bytes, t_ns: int = 0) -> list[Event]:
        """Parse the next read of the stream; return the events it completed."""
        read_index = self.reads
        self.reads = read_index + 1
        n = len(chunk)
        if not n or self._closed:
            return []
        self.bytes_seen += n

        if not self._bom_done:
            parts = self._parts
            if parts:  # only an incomplete BOM prefix can be waiting here
                chunk = parts[0] + chunk
                parts.clear()
            if len(chunk) < 3 and _BOM.startswith(chunk):
                parts.append(chunk)
                return []
            self._bom_done = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
                self._pos = 3
            n = len(chunk)
            if not n:
                return []

        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 10:  # second half of a CRLF split across reads
                chunk = chunk[1:]
                self._pos += 1
                n -= 1
                if not n:
                    return []

        lf = chunk.rfind(b"\n")
        cr = chunk.rfind(b"\r")
        end = (lf if lf > cr else cr) + 1
        if not end:
            self._parts.append(chunk)
            return []
        if cr == n - 1:
            self._skip_lf = True

        parts = self._parts
        if parts:
            parts.append(chunk[:end])
            block = b"".join(parts)
            parts.clear()
        elif end == n:
            block = chunk
        else:
            block = chunk[:end]
        if end < n:
            parts.append(chunk[end:])

        base = self._pos
        self._pos = base + len(block)
        try:
            text = block.decode()
        except UnicodeDecodeError:
            text = self._decode_replace(block, base)
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        lines.pop()  # the block ends with a terminator: the last piece is empty
        return self._lines(lines, t_ns, read_index)

    def close(self) -> list[Event]:
        """Signal EOF.

        Returns ``[]``: per the spec, an event not terminated by a blank line is not dispatched
        (and an incomplete last line is discarded).  Such an event (any field line seen since
        the last blank line, including in the incomplete last line) is recorded instead:
        ``unterminated``, ``pending_data``, ``pending_type`` and a violation.  Its fields are not
        applied (``last_event_id`` and ``retry`` are unchanged by an incomplete last line).
        """
        if self._closed:
            return []
        self._closed = True
        self._bom_done = True
        self._skip_lf = False
        tail = b"".join(self._parts)
        self._parts = []
        pending = self._fields
        data = self._data
        etype: str | None = self._type if self._event_field else None
        if tail:
            try:
                line = tail.decode()
            except UnicodeDecodeError:
                line = self._decode_replace(tail, self._pos)
            if line and line[0] != ":":
                pending = True
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    data.append(value)
                elif name == "event":
                    etype = value
        if pending:
            self.unterminated = True
            self.pending_type = etype
            if data:
                self.pending_data = "\n".join(data)
                what = f"data: {_snippet(self.pending_data)}"
            else:
                what = "no data"
            if etype is not None:
                what = f"event: {_snippet(etype)}, {what}"
            self._violation(f"final event not terminated by a blank line ({what})")
        self._data = []
        self._type = ""
        self._block_id = None
        self._event_field = False
        self._fields = False
        return []

    # -- internals ------------------------------------------------------------------------

    def _violation(self, message: str) -> None:
        violations = self.violations
        if len(violations) < _MAX_VIOLATIONS:
            violations.append(message)
        elif len(violations) == _MAX_VIOLATIONS:
            violations.append("further violations not recorded")

    def _decode_replace(self, raw: bytes, base: int) -> str:
        """Decode like ``raw.decode(errors="replace")``, recording each invalid sequence."""
        out: list[str] = []
        pos = 0
        while True:
            try:
                out.append(raw[pos:].decode())
                return "".join(out)
            except UnicodeDecodeError as exc:
                out.append(raw[pos : pos + exc.start].decode())
                out.append("\ufffd")
                self._violation(f"invalid UTF-8 at byte {base + pos + exc.start}")
                pos += exc.end

    def _lines(self, lines: list[str], t_ns: int, read_index: int) -> list[Event]:
        """Interpret complete lines (terminators removed)."""
        events: list[Event] = []
        data = self._data
        etype = self._type
        id_buf = self._id_buf
        block_id = self._block_id
        event_field = self._event_field
        fields = self._fields
        comments = self.comments
        for line in lines:
            if not line:  # blank line: dispatch the event
                self.last_event_id = id_buf
                if data:
                    event = _new(Event)
                    _set_type(event, etype or "message")
                    _set_data(event, "\n".join(data))
                    _set_id(event, block_id)
                    _set_last_event_id(event, id_buf)
                    _set_event_field(event, event_field)
                    _set_t_ns(event, t_ns)
                    _set_read_index(event, read_index)
                    events.append(event)
                    data.clear()
                etype = ""
                block_id = None
                event_field = fields = False
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
                fields = True
            elif name == "event":
                etype = value
                event_field = fields = True
            elif not name:  # the line starts with ":": a comment
                comments += 1
            else:
                fields = True
                if name == "id":
                    if "\0" in value:
                        self._violation(f"id field containing NUL ignored (id: {_snippet(value)})")
                    else:
                        id_buf = block_id = value
                elif name == "retry" and value.isascii() and value.isdigit():
                    # ValueError: more digits than int() accepts (sys.get_int_max_str_digits()).
                    with suppress(ValueError):
                        self.retry = int(value)
                # any other field name is ignored
        self.comments = comments
        self._type = etype
        self._id_buf = id_buf
        self._block_id = block_id
        self._event_field = event_field
        self._fields = fields
        return events


def parse(body: bytes) -> tuple[list[Event], SSEParser]:
    """Parse a whole body: feed it in one read, then close. Returns (events, parser)."""
    parser = SSEParser()
    events = parser.feed(body)
    events.extend(parser.close())
    return events, parser
