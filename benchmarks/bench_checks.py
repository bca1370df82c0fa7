"""What conformance under load costs: events/s one load process can handle, checks on and off.

Records one streamed session reply and one streamed completion from the reference (each read as
it arrived), then replays their reads, CPU-bound, through what a load user does per stream: the
SSE parser (StreamRecord), the timeline, and, when on, the suites' stream checks. Prints events/s
per process with the checks off and on, and the share the checks take (goal: under 15 %).
Network reads are left out on purpose (they cost the same with or without the checks), so the
share is an upper bound of what the checks take from a real run.

Run: ``python benchmarks/bench_checks.py [--seconds 3 --tokens 16]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import time

from chatconform.client import Client
from chatconform.embedded import EmbeddedServer
from chatconform.load import conformance
from chatconform.load.stream import observe
from chatconform.load.timeline import Timeline
from chatconform.record import Exchange, StreamRecord

PROMPT = "Hello! Please answer briefly."


def record(tokens: int) -> tuple[Exchange, Exchange, str, str, list[list[bytes]]]:
    knobs = ["--ttft-ms", "1", "--itl-ms", "1", "--tokens", str(tokens)]
    with EmbeddedServer(knobs) as target, Client(target) as c:
        sid = c.create_session(target.agent_id).json()["data"]["id"]
        reads: list[list[bytes]] = [[], []]
        ex = c.post_message(sid, PROMPT, stream=True)
        body = {"model": target.agent_id, "messages": [{"role": "user", "content": PROMPT}]}
        cx = c.completion(body | {"stream": True})
    for n, e in enumerate((ex, cx)):
        assert e.stream is not None
        wire = bytes(e.stream.wire)
        # one read per frame, as a token-by-token server sends them
        reads[n] = [part + b"\n\n" for part in wire.split(b"\n\n") if part]
    return ex, cx, sid, target.agent_id or "", reads


def replay(template: Exchange, reads: list[bytes], endpoint: str) -> Exchange:
    ex = Exchange(template.method, template.url, template.request_headers, template.request_body)
    ex.status, ex.headers = template.status, template.headers
    ex.t_headers_ns = time.perf_counter_ns()
    rec = ex.stream = StreamRecord()
    for chunk in reads:
        rec.feed(chunk, time.perf_counter_ns())
    rec.close("eof")
    ex.body = bytes(rec.wire)
    ex.t_end_ns = time.perf_counter_ns()
    observe(Timeline(endpoint, ex.t_start_ns), ex)
    return ex


def rate(seconds: float, one: object) -> float:
    """Events per second of CPU-bound work `one()` (returns the events it handled)."""
    events = 0
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        events += one()  # type: ignore[operator]
    return events / (time.process_time() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tokens", type=int, default=16)
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    ex, cx, sid, model, reads = record(args.tokens)
    conformance.warm_up()
    assert conformance.check_session(ex, sid, PROMPT) == []
    assert conformance.check_completion(cx, model) == []
    cases = {
        "sessions": (ex, reads[0], lambda e: conformance.check_session(e, sid, PROMPT)),
        "completions": (cx, reads[1], lambda e: conformance.check_completion(e, model)),
    }
    print(f"{'endpoint':12} {'events/stream':>13} | {'events/s off':>12} {'events/s on':>12} "
          f"| {'checks take':>11}")  # fmt: skip
    for name, (template, rd, check) in cases.items():
        n_events = len(replay(template, rd, name).stream.events)  # type: ignore[union-attr]

        def off(template: Exchange = template, rd: list[bytes] = rd, name: str = name) -> int:
            return len(replay(template, rd, name).stream.events)  # type: ignore[union-attr]

        def on(
            template: Exchange = template, rd: list[bytes] = rd, name: str = name, check=check
        ) -> int:
            e = replay(template, rd, name)
            check(e)
            return len(e.stream.events)  # type: ignore[union-attr]

        r_off, r_on = rate(args.seconds, off), rate(args.seconds, on)
        share = 1 - r_on / r_off
        print(f"{name:12} {n_events:>13} | {r_off:>12,.0f} {r_on:>12,.0f} | {share:>10.1%}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
