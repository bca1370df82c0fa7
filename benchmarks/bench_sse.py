"""Benchmark chatconform.sse.SSEParser against httpx-sse on the same byte stream.

Run: ``python benchmarks/bench_sse.py [--frames N] [--runs R]``.

The stream is what the load generator sees: N frames ``event: agent_message`` + ``data:`` an
AuditEvent JSON object of about 150 bytes + a blank line, fed in 1 KiB and 64 KiB reads, with
LF line ends and with CRLF line ends (sse-starlette's default).

httpx-sse is measured the way ``EventSource.iter_sse`` runs it: bytes are decoded to text with an
incremental UTF-8 decoder (as httpx's ``iter_text`` does), split into lines by ``SSELineDecoder``
and each line is passed to ``SSEDecoder.decode``. chatconform's parser does all three itself,
on bytes. Both sides produce the same events (checked before timing). The table shows the median
of R runs for each row.
"""

from __future__ import annotations

import argparse
import codecs
import json
import statistics
import time
from collections.abc import Callable

from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from chatconform.sse import SSEParser


def build_stream(frames: int, newline: str) -> bytes:
    out: list[str] = []
    words = ["Hello", " world", ", this", " is", " a", " streamed", " reply", " — ", "café", "!"]
    for seq in range(1, frames + 1):
        event = {
            "id": f"evt_{seq:08d}",
            "conversationId": "conv_3f9a2c1b",
            "seq": seq,
            "tsMs": 1_732_000_000_000 + seq * 7,
            "channel": "chat",
            "eventType": "agent_message",
            "payload": {"messageId": "msg_01", "delta": words[seq % len(words)]},
        }
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        out.append(f"event: agent_message{newline}data: {data}{newline}{newline}")
    return "".join(out).encode()


def reads_of(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def run_chatconform(reads: list[bytes]) -> list[tuple[str, str]]:
    parser = SSEParser()
    events = []
    feed = parser.feed
    for i, chunk in enumerate(reads):
        events.extend(feed(chunk, i))
    events.extend(parser.close())
    return [(e.type, e.data) for e in events]


def run_httpx_sse(reads: list[bytes]) -> list[tuple[str, str]]:
    text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    line_decoder = SSELineDecoder()
    decoder = SSEDecoder()
    events = []
    for chunk in reads:
        text = text_decoder.decode(chunk)
        if not text:
            continue
        for line in line_decoder.decode(text):
            sse = decoder.decode(line)
            if sse is not None:
                events.append(sse)
    tail = text_decoder.decode(b"", True)
    lines = (line_decoder.decode(tail) if tail else []) + line_decoder.flush()
    for line in lines:
        sse = decoder.decode(line)
        if sse is not None:
            events.append(sse)
    return [(e.event, e.data) for e in events]


def median_seconds(fn: Callable[[list[bytes]], object], reads: list[bytes], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn(reads)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    parsers: list[tuple[str, Callable[[list[bytes]], list[tuple[str, str]]]]] = [
        ("chatconform SSEParser", run_chatconform),
        ("httpx-sse SSEDecoder", run_httpx_sse),
    ]
    header = (
        f"{'line ends':<9} {'read':>6} {'parser':<22} {'median s':>9} "
        f"{'events/s':>11} {'MB/s':>8} {'speed-up':>8}"
    )
    print(f"{args.frames} frames, median of {args.runs} runs")
    print(header)
    print("-" * len(header))
    for label, newline in (("LF", "\n"), ("CRLF", "\r\n")):
        body = build_stream(args.frames, newline)
        for size in (1024, 65536):
            reads = reads_of(body, size)
            results = [fn(reads) for _, fn in parsers]
            assert len(results[0]) == args.frames, len(results[0])
            assert all(r == results[0] for r in results), "parsers disagree"
            seconds = [median_seconds(fn, reads, args.runs) for _, fn in parsers]
            for (name, _), s in zip(parsers, seconds, strict=True):
                print(
                    f"{label:<9} {size // 1024:>4}Ki {name:<22} {s:>9.4f} "
                    f"{args.frames / s:>11,.0f} {len(body) / s / 1e6:>8.1f} "
                    f"{seconds[1] / s:>7.2f}x"
                )
    print(f"(frame size ~{len(build_stream(1, chr(10)))} bytes with LF)")


if __name__ == "__main__":
    main()
