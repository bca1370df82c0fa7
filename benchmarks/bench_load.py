"""Calibrate the load measurements against the reference server's injected delays.

For 1, 50 and 200 concurrent streams (one Locust worker process, closed loop, completions)
against the reference with known ``--ttft-ms`` / ``--itl-ms``, print measured TTFT and ITL
p50 / p99 beside the injected values, the error, and the client's CPU and event-loop lag, with
the conformance checks on (the default) and off (``--no-checks``). Then the events/s one worker
process can read: a blast server (its own process) sends conformant completion chunks as fast as
asked, and the table shows events/s read with the checks on and off and the added lag.

Run: ``python benchmarks/bench_load.py [--ttft-ms 200 --itl-ms 40 --tokens 24 --seconds 10]``.
Not a test: figures depend on the machine (the reference server shares its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chatconform.embedded import EmbeddedServer

KEY = "flowyte_sk_test_benchblastkey000000001"


def run_load(
    base_url: str,
    key: str,
    agent: str,
    users: int,
    seconds: int,
    workers: int = 0,
    checks: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWYTE_")}
        env |= {"FLOWYTE_API_KEY": key, "FLOWYTE_AGENT_ID": agent}
        cmd = [
            sys.executable,
            "-m",
            "chatconform.load",
            "--base-url",
            base_url,
            "--endpoint",
            "completions",
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--report-dir",
            d,
            "--workers",
            str(workers),
            "--stream-timeout",
            "120",
        ]
        if not checks:
            cmd.append("--no-checks")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
        path = Path(d) / "load-summary.json"
        if not path.exists():
            raise SystemExit(f"load run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(path.read_text())


def calibration(args: argparse.Namespace) -> None:
    knobs = [
        "--ttft-ms",
        str(args.ttft_ms),
        "--itl-ms",
        str(args.itl_ms),
        "--tokens",
        str(args.tokens),
    ]
    print(
        f"reference: --ttft-ms {args.ttft_ms} --itl-ms {args.itl_ms} --tokens {args.tokens}; "
        f"{args.seconds} s per row, one worker process, completions, closed loop"
    )
    head = (
        f"{'streams':>7} {'checks':>6} {'reqs':>6} | {'TTFT p50':>8} {'p99':>8} {'err p50':>8} "
        f"{'err p99':>8} | {'ITL p50':>8} {'p99':>8} {'err p50':>8} {'err p99':>8} | "
        f"{'cpu %':>6} {'lag p99':>8} {'viol':>5} {'loadavg':>7}"
    )
    print(head)
    print("-" * len(head))
    with EmbeddedServer(knobs) as target:
        for users in args.streams:
            for checks in (True, False):
                s = run_load(
                    target.base_url,
                    target.api_key or "",
                    target.agent_id or "",
                    users,
                    args.seconds,
                    checks=checks,
                )
                row(users, checks, s, args)


def row(users: int, checks: bool, s: dict[str, Any], args: argparse.Namespace) -> None:
    ep = s["endpoints"]["completions"]
    t, i, c = ep["ttft_ms"], ep["itl_ms"], s["client"]
    viol = ep["conformance"]["violating"] if checks else "-"
    print(
        f"{users:>7} {'on' if checks else 'off':>6} {ep['ok']:>6} | {t['p50']:>8.2f} "
        f"{t['p99']:>8.2f} "
        f"{t['p50'] - args.ttft_ms:>+8.2f} {t['p99'] - args.ttft_ms:>+8.2f} | "
        f"{i['p50']:>8.2f} {i['p99']:>8.2f} {i['p50'] - args.itl_ms:>+8.2f} "
        f"{i['p99'] - args.itl_ms:>+8.2f} | {c['cpu_percent']:>6.1f} "
        f"{c['loop_lag_p99_ms']:>8.2f} {viol:>5} {os.getloadavg()[0]:>7.2f}"
        + ("  SATURATED" if c["saturated"] else ""),
        flush=True,
    )


# -- events/s capacity -------------------------------------------------------------------------


def _chunk(delta: bytes, finish: bytes = b"null") -> bytes:
    return (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"a",'
        b'"choices":[{"index":0,"delta":' + delta + b',"finish_reason":' + finish + b"}]}\n\n"
    )


ROLE = _chunk(b'{"role":"assistant","content":""}')
CHUNK = _chunk(b'{"content":"tok"}')
FINISH = _chunk(b"{}", b'"stop"')


def blast_server(port_out: Any, events: int, per_write: int, every_ms: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET"):
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                first = ROLE
                writer.write(b"%x\r\n%s\r\n" % (len(first), first))
                block = CHUNK * per_write
                piece = b"%x\r\n%s\r\n" % (len(block), block)
                for _ in range(events // per_write):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(every_ms / 1000)
                done = FINISH + b"data: [DONE]\n\n"
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def capacity(args: argparse.Namespace) -> None:
    # each stream: `per_write` events every `every_ms` ms; offered load = users * rate per stream
    per_write, every_ms, users = 10, 5.0, args.blast_streams
    offered = users * per_write * 1000 / every_ms
    queue: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(
        target=blast_server, args=(queue, 2000, per_write, every_ms), daemon=True
    )
    proc.start()
    try:
        port = queue.get(timeout=10)
        print(
            f"\nevents/s capacity: blast server offers {offered:,.0f} events/s over {users} "
            f"streams ({per_write} events per read every {every_ms:g} ms)"
        )
        print(
            f"{'workers':>9} {'checks':>6} | {'events/s read':>13} | {'cpu % (max proc)':>16} | "
            f"{'loop lag p99 ms':>15} | {'violating':>9} | {'loadavg':>7}"
        )
        for workers in (0, 2):
            for checks in (True, False):
                s = run_load(
                    f"http://127.0.0.1:{port}/api/v1",
                    KEY,
                    "a",
                    users,
                    args.seconds,
                    workers,
                    checks=checks,
                )
                ep = s["endpoints"]["completions"]
                c = s["client"]
                label = "1 (local)" if workers == 0 else str(workers)
                viol = ep["conformance"]["violating"] if checks else "-"
                print(
                    f"{label:>9} {'on' if checks else 'off':>6} | {ep['tokens_per_s']:>13,.0f} | "
                    f"{c['cpu_percent']:>16.1f} | {c['loop_lag_p99_ms']:>15.2f} | {viol:>9} | "
                    f"{os.getloadavg()[0]:>7.2f}",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.join(5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ttft-ms", type=int, default=200)
    p.add_argument("--itl-ms", type=int, default=40)
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 50, 200])
    p.add_argument("--blast-streams", type=int, default=20)
    p.add_argument("--skip-capacity", action="store_true")
    p.add_argument("--skip-calibration", action="store_true")
    args = p.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
        f"host {socket.gethostname()}"
    )
    if not args.skip_calibration:
        calibration(args)
    if not args.skip_capacity:
        capacity(args)


if __name__ == "__main__":
    main()
