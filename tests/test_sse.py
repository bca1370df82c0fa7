"""Unit tests of chatconform.sse on the cases of ../shared/SSE-VECTORS.md.

Each case is fed as given, whole, one byte at a time, and split in two at every byte: the
events (and the parser's end state) must be the same every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from chatconform.sse import Event, SSEParser, parse


@dataclass(frozen=True)
class Vector:
    id: str
    reads: tuple[bytes, ...]
    events: tuple[tuple[str, str], ...]
    retry: int | None = None
    last_event_id: str = ""
    violations: tuple[str, ...] = field(default=())  # substrings, one per expected violation


VECTORS: tuple[Vector, ...] = (
    Vector(
        "format-newlines", (b"data:test\r\ndata\ndata:test\r\n\r",), (("message", "test\n\ntest"),)
    ),
    Vector(
        "format-field-data",
        (b"data:\n\ndata\ndata\n\n",),
        (("message", ""), ("message", "\n")),
    ),
    Vector(
        "format-leading-space",
        (b"data:\ttest\n\ndata:  x\n\n",),
        (("message", "\ttest"), ("message", " x")),
    ),
    Vector("format-field-parsing-uppercase", (b"Data:x\n\n",), ()),
    Vector("format-field-parsing-hyphen", (b"da-ta:x\n\n",), ()),
    Vector("format-field-parsing-leading-space", (b" data:x\n\n",), ()),
    Vector("nul-in-data-kept", (b"data:a\0b\n\n",), (("message", "a\0b"),)),
    Vector(
        "format-comments",
        (b":\n: x\r\n:data:fail\r:" + b"c" * 5000 + b"\r\n: y\rdata:ok\n\n",),
        (("message", "ok"),),
    ),
    Vector("format-bom", (b"\xef\xbb\xbfdata:1\n\n",), (("message", "1"),)),
    Vector(
        "format-bom-2",
        (b"\xef\xbb\xbf\xef\xbb\xbfdata:1\n\ndata:2\n\n",),
        (("message", "2"),),
    ),
    Vector(
        "format-data-before-final-empty-line",
        (b"data:1\n\nid:7\ndata:2",),
        (("message", "1"),),
        violations=("final event not terminated by a blank line (data: '2')",),
    ),
    Vector("format-field-event", (b"event:done\ndata:{}\n\n",), (("done", "{}"),)),
    Vector("format-field-event-empty", (b"event:\ndata:x\n\n",), (("message", "x"),)),
    Vector("no-data-no-dispatch", (b"event:done\n\n",), ()),
    Vector(
        "format-field-retry",
        (b"retry:03000\n",),
        (),
        retry=3000,
        violations=("final event not terminated by a blank line (no data)",),
    ),
    Vector(
        "format-field-retry-bogus",
        (b"retry:1000x\n",),
        (),
        retry=None,
        violations=("final event not terminated by a blank line (no data)",),
    ),
    Vector(
        "format-field-id-null",
        (b"id:a\0b\ndata:x\n\n",),
        (("message", "x"),),
        violations=("id field containing NUL ignored",),
    ),
    Vector("event-data", (b'data:{"a":\ndata:1}\n\n',), (("message", '{"a":\n1}'),)),
    Vector(
        "unicode-line-separators-not-line-ends",
        ("data:a\u2028b\u2029c\u0085d\n\n".encode(),),
        (("message", "a\u2028b\u2029c\u0085d"),),
    ),
    Vector("cr-lf-split-across-reads", (b"data:x\r", b"\n\n"), (("message", "x"),)),
    Vector("bare-cr-before-eof", (b"data:x\n\r",), (("message", "x"),)),
    Vector("utf8-split-across-reads", (b"data:caf\xc3", b"\xa9\n\n"), (("message", "café"),)),
    Vector(
        "invalid-utf8",
        (b"data:\xff\n\n",),
        (("message", "\ufffd"),),
        violations=("invalid UTF-8 at byte 5",),
    ),
)
IDS = [v.id for v in VECTORS]


def run(reads: list[bytes]) -> tuple[list[Event], SSEParser]:
    parser = SSEParser()
    events: list[Event] = []
    for i, chunk in enumerate(reads):
        events.extend(parser.feed(chunk, t_ns=1000 + i))
    events.extend(parser.close())
    return events, parser


def outcome(events: list[Event], parser: SSEParser) -> tuple[object, ...]:
    """Everything but the read stamps, which legitimately depend on the chunking."""
    return (
        [(e.type, e.data, e.id, e.last_event_id, e.event_field) for e in events],
        parser.retry,
        parser.last_event_id,
        parser.comments,
        parser.violations,
        parser.unterminated,
        parser.pending_data,
        parser.pending_type,
    )


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector(v: Vector) -> None:
    events, parser = run(list(v.reads))
    assert [(e.type, e.data) for e in events] == list(v.events)
    assert parser.retry == v.retry
    assert parser.last_event_id == v.last_event_id
    assert len(parser.violations) == len(v.violations), parser.violations
    for got, want in zip(parser.violations, v.violations, strict=True):
        assert want in got
    assert parser.reads == len(v.reads)
    assert parser.bytes_seen == sum(map(len, v.reads))


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector_whole(v: Vector) -> None:
    body = b"".join(v.reads)
    assert outcome(*run([body])) == outcome(*run(list(v.reads)))
    events, parser = parse(body)
    assert outcome(events, parser) == outcome(*run(list(v.reads)))


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector_bytewise(v: Vector) -> None:
    body = b"".join(v.reads)
    reads = [body[i : i + 1] for i in range(len(body))]
    assert outcome(*run(reads)) == outcome(*run([body]))


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector_every_two_chunk_split(v: Vector) -> None:
    body = b"".join(v.reads)
    want = outcome(*run([body]))
    for i in range(len(body) + 1):
        assert outcome(*run([body[:i], body[i:]])) == want, f"split at {i}"


# -- read stamping ------------------------------------------------------------------------------


def test_events_stamped_with_completing_read() -> None:
    p = SSEParser()
    assert p.feed(b"data:a\n", t_ns=100) == []
    assert p.feed(b"", t_ns=150) == []  # an empty read still counts as a read
    (e1,) = p.feed(b"\ndata:b\ndata:c", t_ns=200)
    assert (e1.data, e1.t_ns, e1.read_index) == ("a", 200, 2)
    (e2,) = p.feed(b"\n\n", t_ns=300)
    assert (e2.data, e2.t_ns, e2.read_index) == ("b\nc", 300, 3)
    assert p.close() == []
    assert p.reads == 4
    assert p.bytes_seen == len(b"data:a\n\ndata:b\ndata:c\n\n")


def test_several_events_in_one_read_share_the_stamp() -> None:
    p = SSEParser()
    events = p.feed(b"data:1\n\ndata:2\n\ndata:3\n\n", t_ns=42)
    assert [(e.data, e.t_ns, e.read_index) for e in events] == [
        ("1", 42, 0),
        ("2", 42, 0),
        ("3", 42, 0),
    ]


def test_event_ending_in_cr_cr_dispatched_by_that_read() -> None:
    p = SSEParser()
    (e,) = p.feed(b"data:x\r\r", t_ns=5)
    assert (e.data, e.read_index) == ("x", 0)
    assert p.feed(b"\ndata:y\n\n", t_ns=6)[0].data == "y"


# -- CR at the end of a read ------------------------------------------------------------------


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    # If the LF were taken as a blank line, "x" would be dispatched alone.
    events, _ = run([b"data:x\r", b"\ndata:y\n\n"])
    assert [e.data for e in events] == ["x\ny"]


def test_cr_at_chunk_end_then_empty_read_then_lf() -> None:
    events, _ = run([b"data:x\r", b"", b"\ndata:y\n\n"])
    assert [e.data for e in events] == ["x\ny"]


def test_cr_at_chunk_end_then_cr() -> None:
    events, _ = run([b"data:x\r", b"\rdata:y\r\r"])
    assert [e.data for e in events] == ["x", "y"]


def test_cr_at_chunk_end_then_text() -> None:
    events, _ = run([b"data:x\r", b"data:y\n\n"])
    assert [e.data for e in events] == ["x\ny"]


def test_only_one_lf_skipped_after_cr() -> None:
    events, _ = run([b"data:x\r", b"\n\n"])
    assert [e.data for e in events] == ["x"]


# -- BOM ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reads",
    [
        [b"\xef", b"\xbb", b"\xbfdata:1\n\n"],
        [b"\xef\xbb", b"\xbfdata:1\n\n"],
        [b"\xef", b"\xbb\xbfdata:1\n\n"],
        [b"", b"\xef", b"", b"\xbb\xbf", b"data:1\n\n"],
    ],
    ids=["1-1-rest", "2-rest", "1-2rest", "with-empty-reads"],
)
def test_bom_split_across_reads_is_stripped(reads: list[bytes]) -> None:
    events, parser = run(reads)
    assert [e.data for e in events] == ["1"]
    assert parser.violations == []


def test_second_bom_not_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    events, parser = run([b"\xef\xbb\xbf", b"\xef\xbb\xbf", b"data:1\n\ndata:2\n\n"])
    assert [e.data for e in events] == ["2"]
    assert parser.violations == []


def test_bom_not_at_stream_start_not_stripped() -> None:
    events, _ = run([b"data:1\n\n", b"\xef\xbb\xbfdata:2\n\n"])
    assert [e.data for e in events] == ["1"]


def test_incomplete_bom_prefix_then_eof() -> None:
    events, parser = run([b"\xef\xbb"])
    assert events == []
    assert parser.unterminated
    assert parser.violations[0] == "invalid UTF-8 at byte 0"


def test_bom_prefix_then_other_bytes_is_data() -> None:
    events, parser = run([b"\xef", b"\xbbdata:1\n\ndata:2\n\n"])
    assert [e.data for e in events] == ["2"]  # the first line's field name is "\ufffddata"
    assert parser.violations == ["invalid UTF-8 at byte 0"]


# -- violations -------------------------------------------------------------------------------


def test_clean_stream_has_no_violations() -> None:
    _, parser = parse(b": hi\nevent:a\ndata:1\nid:1\nretry:5\n\n")
    assert parser.violations == []
    assert not parser.unterminated
    assert parser.pending_data is None


def test_invalid_utf8_offsets_are_absolute() -> None:
    events, parser = run([b"\xef\xbb\xbfdata:ok\n\n", b"data:a\xffb\xc3\n\n"])
    assert [e.data for e in events] == ["ok", "a\ufffdb\ufffd"]
    assert parser.violations == ["invalid UTF-8 at byte 18", "invalid UTF-8 at byte 20"]


def test_invalid_utf8_split_across_reads() -> None:
    events, parser = run([b"data:\xe2\x82", b"\n\n"])  # truncated 3-byte sequence
    assert [e.data for e in events] == ["\ufffd"]
    assert parser.violations == ["invalid UTF-8 at byte 5"]


def test_invalid_utf8_in_field_name_and_comment() -> None:
    _, parser = parse(b":\xff\nd\xffta:1\n\n")
    assert parser.violations == ["invalid UTF-8 at byte 1", "invalid UTF-8 at byte 4"]
    assert parser.comments == 1


def test_unterminated_final_event_with_complete_lines() -> None:
    events, parser = parse(b"data:1\n\nevent:done\ndata:{}\nid:9\n")
    assert [e.data for e in events] == ["1"]
    assert parser.unterminated
    assert parser.pending_data == "{}"
    assert parser.pending_type == "done"
    assert parser.last_event_id == ""  # the id of an event never dispatched is not applied
    assert parser.violations == [
        "final event not terminated by a blank line (event: 'done', data: '{}')"
    ]


def test_unterminated_final_event_in_incomplete_line() -> None:
    events, parser = parse(b"data:1\n\ndata:a\ndata: b")
    assert [e.data for e in events] == ["1"]
    assert parser.unterminated
    assert parser.pending_data == "a\nb"
    assert parser.pending_type is None


def test_unterminated_final_event_without_data() -> None:
    _, parser = parse(b"data:1\n\nid:5\n")
    assert parser.unterminated
    assert parser.pending_data is None
    assert parser.violations == ["final event not terminated by a blank line (no data)"]


def test_incomplete_id_line_not_applied() -> None:
    _, parser = parse(b"id:1\ndata:1\n\nid:2")
    assert parser.last_event_id == "1"
    assert parser.unterminated


def test_trailing_comment_is_not_an_unterminated_event() -> None:
    for body in (b"data:1\n\n: bye\n", b"data:1\n\n: bye", b"data:1\n\n"):
        _, parser = parse(body)
        assert not parser.unterminated, body
        assert parser.violations == [], body


def test_long_pending_data_is_shortened_in_message() -> None:
    _, parser = parse(b"data:" + b"x" * 1000)
    assert parser.pending_data == "x" * 1000
    assert len(parser.violations[0]) < 200


def test_nul_id_violation_and_id_unchanged() -> None:
    events, parser = parse(b"id:1\ndata:a\n\nid:a\0b\ndata:x\n\n")
    assert [(e.data, e.id, e.last_event_id) for e in events] == [("a", "1", "1"), ("x", None, "1")]
    assert parser.last_event_id == "1"
    assert len(parser.violations) == 1
    assert "NUL" in parser.violations[0]


# -- ids and event fields ---------------------------------------------------------------------


def test_id_per_block_and_last_event_id_persist() -> None:
    events, parser = parse(b"id:1\ndata:a\n\ndata:b\n\nid\ndata:c\n\n")
    assert [(e.id, e.last_event_id) for e in events] == [("1", "1"), (None, "1"), ("", "")]
    assert parser.last_event_id == ""


def test_id_without_data_updates_last_event_id_string() -> None:
    # WHATWG "dispatch the event" sets the last event ID string before the empty-data return.
    events, parser = parse(b"id:7\n\n")
    assert events == []
    assert parser.last_event_id == "7"


def test_event_field_flag() -> None:
    events, _ = parse(b"event:\ndata:x\n\ndata:y\n\nevent:e\ndata:z\n\n")
    assert [(e.type, e.event_field) for e in events] == [
        ("message", True),
        ("message", False),
        ("e", True),
    ]


def test_event_type_reset_after_blank_line_without_data() -> None:
    events, _ = parse(b"event:e\n\ndata:x\n\n")
    assert [(e.type, e.event_field) for e in events] == [("message", False)]


def test_field_without_colon_and_value_with_colons() -> None:
    events, _ = parse(b"data\ndata:a:b: c\nevent:x:y\n\n")
    assert [(e.type, e.data) for e in events] == [("x:y", "\na:b: c")]


def test_unknown_fields_ignored_but_counted_as_fields() -> None:
    events, parser = parse(b"foo:bar\nretry2:5\n\n")
    assert events == []
    assert parser.retry is None
    assert parser.violations == []


# -- retry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (b"retry:03000", 3000),
        (b"retry: 5", 5),
        (b"retry:0", 0),
        (b"retry:1000x", None),
        (b"retry:", None),
        (b"retry", None),
        (b"retry:  5", None),
        (b"retry:-1", None),
        (b"retry:+1", None),
        (b"retry:1.5", None),
        (b"retry:1_000", None),
        (b"retry:5 ", None),
        ("retry:\u0661\u0662".encode(), None),  # Arabic-Indic digits are not ASCII digits
        ("retry:\u00b2".encode(), None),
        (b"Retry:5", None),
    ],
)
def test_retry(line: bytes, want: int | None) -> None:
    _, parser = parse(line + b"\n")
    assert parser.retry == want


def test_retry_keeps_last_valid_value() -> None:
    _, parser = parse(b"retry:10\nretry:x\n\nretry:20\nretry:\n")
    assert parser.retry == 20


def test_retry_with_too_many_digits_does_not_raise() -> None:
    _, parser = parse(b"retry:7\nretry:" + b"9" * 10000 + b"\n")
    assert parser.retry == 7


# -- lifecycle ----------------------------------------------------------------------------------


def test_close_is_idempotent_and_feed_after_close_ignored() -> None:
    p = SSEParser()
    p.feed(b"data:1")
    assert p.close() == []
    assert p.close() == []
    assert p.feed(b"\n\n") == []
    assert len(p.violations) == 1


def test_parse_returns_events_and_parser() -> None:
    events, parser = parse(b"data:1\n\n")
    assert events == [Event("message", "1", None, "", False, 0, 0)]
    assert isinstance(parser, SSEParser)
    assert parser.reads == 1


def test_event_is_frozen() -> None:
    (e,) = parse(b"data:1\n\n")[0]
    with pytest.raises(AttributeError):
        e.data = "2"  # type: ignore[misc]


def test_long_line_fed_byte_by_byte_is_linear() -> None:
    line = b"data:" + b"x" * 200_000 + b"\n\n"
    p = SSEParser()
    events: list[Event] = []
    for i in range(len(line)):
        events.extend(p.feed(line[i : i + 1]))
    assert [len(e.data) for e in events] == [200_000]
