"""Run the official OpenAI SDKs against a target (OAI-5), keeping a copy of the bytes they parse.

Each SDK (Python `openai`, Node `openai`) makes one plain and one streamed completion with only the
base URL swapped. A tee between the SDK and the network copies every byte of the response the SDK
reads: for Python an `httpx2` transport (the http client class the `openai` package takes through
`http_client=`), for Node a wrapper around `fetch` (the client's `fetch` option). The copy becomes
an `Exchange`, parsed by chatconform's own SSE parser, so the check compares the SDK's text with
the text of that same response, never of another request. When the SDK stops reading early (the
Python SDK closes a stream at `data: [DONE]`), the tee reads the rest of the response, within the
exchange's deadline and byte cap, so that the copy is whole.

The key reaches the Node process through its environment, never its command line.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from chatconform.budget import Budget
from chatconform.overlap import at_once
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Limits, Target
from chatconform.tls import verifying_context

NODE_SDK_SPEC = "openai@7"
NODE_DIR = Path(
    os.environ.get("CHATCONFORM_NODE_DIR", Path.home() / ".cache" / "chatconform" / "node")
)
NODE_SCRIPT = Path(__file__).with_name("sdk_node.mjs")
INSTALL_TIMEOUT_S = 180
INSTALL_HINT = (
    f"install Node.js 18+ with npm and rerun: chatconform installs {NODE_SDK_SPEC} into "
    f"{NODE_DIR} (./scripts/setup does it too)"
)
LANGUAGES = ("python", "node")
Mode = Literal["plain", "stream"]
MODES: tuple[Mode, ...] = ("plain", "stream")


@dataclass(slots=True)
class Capture:
    """The tee's copy of one request and the response bytes as they arrived."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None
    t_start_ns: int = field(default_factory=time.perf_counter_ns)
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[tuple[int, bytes]] = field(default_factory=list)  # (arrival ns, bytes)
    size: int = 0
    ended_by: str = "open"  # eof | timeout | byte-cap | transport-error | open
    error: str | None = None
    decoded: bool = False  # the chunks are already content-decoded (fetch decodes; httpx2 not)
    t_headers_ns: int | None = None
    t_end_ns: int | None = None

    def add(self, chunk: bytes, cap: int) -> bool:
        """Keep a chunk (up to the byte cap); False once the cap is reached."""
        room = cap - self.size
        if room > 0:
            self.chunks.append((time.perf_counter_ns(), chunk[:room]))
        self.size += len(chunk)
        return self.size <= cap


@dataclass(slots=True)
class SdkCall:
    """One completion through an official SDK: what the SDK handed its caller, and the bytes."""

    language: str  # "python" | "node"
    mode: Mode
    text: str | None = None
    error: str | None = None
    exchange: Exchange | None = None  # the response the SDK parsed, as chatconform records it


def parse_languages(text: str) -> tuple[str, ...]:
    """The SDKs OAI-5 runs (`--sdk`): a comma list of python and node, or none."""
    if text.strip().lower() == "none":
        return ()
    chosen = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in LANGUAGES]
    if unknown or not chosen:
        raise ValueError(f"--sdk {text!r}: a comma list of {', '.join(LANGUAGES)}, or none")
    return tuple(lang for lang in LANGUAGES if lang in chosen)


# -- the copy, as an Exchange ---------------------------------------------------------------
def exchange_of(cap: Capture, limits: Limits) -> Exchange:
    """The tee's copy as chatconform's own record: a stream goes through the project's SSE parser."""
    ex = Exchange(cap.method, cap.url, dict(cap.request_headers), cap.request_body)
    ex.t_start_ns, ex.t_headers_ns = cap.t_start_ns, cap.t_headers_ns
    ex.t_end_ns = cap.t_end_ns or time.perf_counter_ns()
    ex.error = cap.error
    ex.timed_out = cap.ended_by == "timeout"
    ex.over_cap = cap.ended_by == "byte-cap"
    if cap.status is None:
        return ex
    ex.status = cap.status
    ex.headers = {k.lower(): v for k, v in cap.headers}
    chunks = cap.chunks
    encoding = ex.headers.get("content-encoding", "identity").strip().lower()
    if chunks and not cap.decoded and encoding not in ("", "identity"):
        raw = b"".join(c for _, c in chunks)
        body, why = _decode(cap.headers, raw)
        if body is None:
            ex.error = f"cannot decode the response's Content-Encoding {encoding!r}: {why}"
            body = raw
        chunks = [(chunks[-1][0], body)]
    if ex.media_type == "text/event-stream":
        rec = ex.stream = StreamRecord()
        for t_ns, chunk in chunks:
            rec.feed(chunk, t_ns)
        rec.close("client-drop" if cap.ended_by == "open" else cap.ended_by)
        ex.body = bytes(rec.wire)
    else:
        ex.body = b"".join(c for _, c in chunks)[: limits.max_body_bytes]
    return ex


def _decode(headers: list[tuple[str, str]], raw: bytes) -> tuple[bytes | None, str]:
    """Undo a Content-Encoding the way the SDK's http client does (with that client's decoders)."""
    http = sdk_http_module()
    try:
        return http.Response(200, headers=headers, content=raw).content, ""
    except Exception as exc:  # a decoding error of the http client's: the copy cannot be read
        return None, f"{type(exc).__name__}: {exc}"


def sdk_http_module() -> Any:
    """The http client package the installed `openai` takes through `http_client=`: `httpx2`
    for recent releases, `httpx` for older ones (the two share the transport API used here)."""
    import importlib

    import openai

    base = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")
    return importlib.import_module(base.__module__.split(".")[0])


# -- Python: a tee transport for httpx2 ------------------------------------------------------
def _tee_transport(limits: Limits, captures: list[Capture]) -> Any:
    """A transport of the SDK's http client (httpx2) that sends through the default one and
    copies what comes back."""
    httpx2 = sdk_http_module()

    class TeeStream(httpx2.SyncByteStream):
        def __init__(self, inner: httpx2.SyncByteStream, cap: Capture, deadline: int) -> None:
            self._inner = inner
            self._it: Iterator[bytes] | None = None
            self._cap = cap
            self._deadline = deadline

        def _next(self) -> bytes | None:
            if self._it is None:
                self._it = iter(self._inner)
            try:
                chunk = next(self._it)
            except StopIteration:
                self._cap.ended_by = "eof"
                return None
            except httpx2.TimeoutException as exc:
                self._end("timeout", f"no byte for {limits.timeout:g} s ({type(exc).__name__})")
                raise
            except httpx2.HTTPError as exc:
                self._end("transport-error", f"{type(exc).__name__}: {exc}")
                raise
            if not self._cap.add(chunk, limits.max_body_bytes):
                self._end("byte-cap", f"body exceeded {limits.max_body_bytes / 1048576:g} MiB")
            elif time.perf_counter_ns() > self._deadline:
                self._end("timeout", f"the exchange outlived its {limits.stream_timeout:g} s")
            return chunk

        def _end(self, how: str, error: str) -> None:
            if self._cap.ended_by == "open":
                self._cap.ended_by, self._cap.error = how, error

        def __iter__(self) -> Iterator[bytes]:
            while self._cap.ended_by == "open":
                chunk = self._next()
                if chunk is None:
                    return
                yield chunk
            if self._cap.ended_by == "timeout":
                raise httpx2.ReadTimeout(self._cap.error or "timeout")
            if self._cap.ended_by == "byte-cap":
                raise httpx2.ReadError(self._cap.error or "byte cap")

        def close(self) -> None:
            # the SDK stopped reading (at data: [DONE]): read the rest into the copy, bounded
            try:
                while self._cap.ended_by == "open" and self._next() is not None:
                    pass
            except httpx2.HTTPError:
                pass
            finally:
                self._cap.t_end_ns = time.perf_counter_ns()
                self._inner.close()

    class TeeTransport(httpx2.BaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.HTTPTransport(verify=verifying_context())

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            cap = Capture(request.method, str(request.url), dict(request.headers), request.read())
            captures.append(cap)
            deadline = cap.t_start_ns + int(limits.stream_timeout * 1e9)
            try:
                resp = self._inner.handle_request(request)
            except httpx2.TimeoutException as exc:
                cap.ended_by, cap.error = "timeout", f"no response ({type(exc).__name__})"
                raise
            except httpx2.HTTPError as exc:
                cap.ended_by, cap.error = "transport-error", f"{type(exc).__name__}: {exc}"
                raise
            cap.t_headers_ns = time.perf_counter_ns()
            cap.status = resp.status_code
            cap.headers = [(k, v) for k, v in resp.headers.multi_items()]
            assert isinstance(resp.stream, httpx2.SyncByteStream)
            return httpx2.Response(
                status_code=resp.status_code,
                headers=resp.headers,
                stream=TeeStream(resp.stream, cap, deadline),
                extensions=resp.extensions,
            )

        def close(self) -> None:
            self._inner.close()

    return TeeTransport()


def run_python(target: Target, body: dict[str, Any], budget: Budget | None = None) -> list[SdkCall]:
    """A plain and a streamed completion through the Python SDK, each bounded as a whole (the SDK
    bounds each read only) and each with the copy of its response; both at once (each waits on
    the agent)."""
    calls = [
        partial(_bounded, target, body, mode, budget, "python", _python_send) for mode in MODES
    ]
    return at_once(budget, *calls)


def _bounded(
    target: Target,
    body: dict[str, Any],
    mode: Mode,
    budget: Budget | None,
    language: str,
    send: Callable[[Target, dict[str, Any], Mode], SdkCall],
) -> SdkCall:
    """One SDK call inside the run's bounds: admitted (or refused) by the budget, sent, settled."""
    refused, held = _admit(target, body, budget, language, mode)
    if refused is not None:
        return refused
    degraded = budget is not None and budget.degraded
    if degraded and budget is not None:  # the target's streams do not end: a short deadline
        limits = replace(target.limits, stream_timeout=budget.exchange_seconds())
        target = replace(target, limits=limits)
    call = send(target, body, mode)
    ex = call.exchange
    if degraded and budget is not None and ex is not None and ex.timed_out and ex.t_end_ns:
        # cut short because the run knows the target's streams do not end (as client.Client
        # does): not the target's failure to meet the full deadline, so not judged (ERROR)
        ex.abandoned = budget.abandon_reason((ex.t_end_ns - ex.t_start_ns) / 1e9)
        ex.error = f"{ex.error}; {ex.abandoned}"
    _settle(budget, held, ex)
    return call


def _python_send(target: Target, body: dict[str, Any], mode: Mode) -> SdkCall:
    lim = target.limits
    captures: list[Capture] = []
    box: list[SdkCall] = []
    worker = threading.Thread(
        target=lambda: box.append(_python_call(target, body, mode, captures)), daemon=True
    )
    worker.start()
    limit = lim.stream_timeout + 5
    worker.join(limit)
    call = (
        box[0] if box else SdkCall("python", mode, error=f"the SDK did not finish in {limit:g} s")
    )
    if captures and captures[-1].ended_by == "open" and not box:
        captures[-1].ended_by = "timeout"
        captures[-1].error = f"the SDK's exchange outlived {limit:g} s"
    if captures:
        call.exchange = exchange_of(captures[-1], lim)
    return call


def _python_call(
    target: Target, body: dict[str, Any], mode: Mode, captures: list[Capture]
) -> SdkCall:
    import openai

    lim = target.limits
    http = openai.DefaultHttpxClient(
        transport=_tee_transport(lim, captures),
        follow_redirects=False,  # a redirect must never carry the key to another host
        trust_env=False,  # no proxy from the environment may route around the tee
    )
    client = openai.OpenAI(
        base_url=target.base_url,
        api_key=target.api_key or "",
        timeout=lim.timeout,
        max_retries=0,
        http_client=http,
    )
    kwargs = {k: v for k, v in body.items() if k != "stream"}
    call = SdkCall("python", mode)
    try:
        if mode == "plain":
            reply = client.chat.completions.create(**kwargs)
            choices = reply.choices or []
            call.text = choices[0].message.content if choices else None
        else:
            parts: list[str] = []
            for n, chunk in enumerate(client.chat.completions.create(**kwargs, stream=True)):
                if n > 100_000:
                    raise RuntimeError("more than 100,000 chunks")
                for choice in chunk.choices or []:
                    if choice.delta and choice.delta.content:
                        parts.append(choice.delta.content)
            call.text = "".join(parts)
    except Exception as exc:  # the SDK's own errors are the finding
        call.error = f"{type(exc).__name__}: {target.redact(str(exc))[:400]}"
    finally:
        client.close()
    return call


def _admit(
    target: Target, body: dict[str, Any], budget: Budget | None, language: str, mode: Mode
) -> tuple[SdkCall | None, Exchange]:
    """The call as the run's budget sees it: refused (deadline, breaker, agent-call cap: recorded
    as not sent), or admitted holding one agent call (given back or counted by `_settle`)."""
    ex = Exchange("POST", target.url("/chat/completions"), {}, json.dumps(body).encode())
    why = None
    if budget is not None and mode == "stream":
        why = budget.streams_not_judged()  # the target's streams do not end: the SDK would wait
    if why is None:
        why = budget.admit(ex) if budget is not None else None
    if why is None:
        return None, ex
    ex.error, ex.not_sent, ex.t_end_ns = why, True, ex.t_start_ns
    return SdkCall(language, mode, error=why, exchange=ex), ex


def _settle(budget: Budget | None, held: Exchange, sent: Exchange | None) -> None:
    """After an SDK call: the copy of its response settles the agent call held for it (counted
    when accepted, with its tokens) and feeds the breaker; without a copy the call is given back."""
    if budget is None:
        return
    if sent is None:
        budget.record(held)
        return
    sent.agent_claim = held.agent_claim
    budget.record(sent)


# -- Node: a fetch wrapper, in a child process -----------------------------------------------
def node_unavailable() -> str | None:
    """Why the Node SDK cannot run here (None when it can); installs openai from npm once."""
    if shutil.which("node") is None:
        return f"node is not installed; {INSTALL_HINT}"
    if (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        return None
    if shutil.which("npm") is None:
        return f"npm is not installed, so the Node openai SDK cannot be; {INSTALL_HINT}"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    cmd = ["npm", "install", "--prefix", str(NODE_DIR), NODE_SDK_SPEC]
    cmd += ["--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"npm install {NODE_SDK_SPEC} took over {INSTALL_TIMEOUT_S} s; {INSTALL_HINT}"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return f"npm install {NODE_SDK_SPEC} failed ({' '.join(tail)}); {INSTALL_HINT}"
    return None


def run_node(target: Target, body: dict[str, Any], budget: Budget | None = None) -> list[SdkCall]:
    """A plain and a streamed completion through the Node SDK, one child process each, both at
    once (each waits on the agent)."""
    shutil.copyfile(NODE_SCRIPT, NODE_DIR / "sdk_node.mjs")  # once, before either child reads it
    calls = [partial(_bounded, target, body, mode, budget, "node", _node_send) for mode in MODES]
    return at_once(budget, *calls)


def _node_send(target: Target, body: dict[str, Any], mode: Mode) -> SdkCall:
    lim = target.limits
    script = NODE_DIR / "sdk_node.mjs"  # copied there by run_node
    env = {**os.environ, "CHATCONFORM_KEY": target.api_key or ""}
    payload = {
        "baseURL": target.base_url,
        "body": body,
        "mode": mode,
        "timeoutMs": int(lim.timeout * 1000),
        "deadlineMs": int(lim.stream_timeout * 1000),
        "maxBytes": lim.max_body_bytes,
    }
    limit = lim.stream_timeout + 10
    try:
        done = subprocess.run(
            ["node", str(script)],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=limit,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SdkCall("node", mode, error=f"the Node SDK did not finish in {limit:g} s")
    out = done.stdout.decode(errors="replace").strip()
    try:
        data = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict) or "capture" not in data:
        err = done.stderr.decode(errors="replace").strip()[-400:] or f"exit {done.returncode}"
        return SdkCall("node", mode, error=f"the Node script failed: {target.redact(err)}")
    call = SdkCall("node", mode, data.get("text"), data.get("error"))
    if call.error:
        call.error = target.redact(str(call.error))[:400]
    if data["capture"] is not None:
        call.exchange = exchange_of(_capture_from_node(data["capture"]), lim)
    return call


def _capture_from_node(c: dict[str, Any]) -> Capture:
    """The fetch wrapper's copy (times in ms since it started) as a Capture."""
    t0 = time.perf_counter_ns() - int(float(c.get("elapsedMs", 0)) * 1e6)
    body = c.get("requestBody")
    cap = Capture(
        str(c.get("method", "POST")),
        str(c.get("url", "")),
        {str(k): str(v) for k, v in (c.get("requestHeaders") or {}).items()},
        body.encode() if isinstance(body, str) else None,
        t_start_ns=t0,
        decoded=True,  # fetch has already undone any Content-Encoding
    )
    if c.get("status") is not None:
        cap.status = int(c["status"])
        cap.headers = [(str(k), str(v)) for k, v in c.get("headers") or []]
        cap.t_headers_ns = t0 + int(float(c.get("headersMs", 0)) * 1e6)
    cap.chunks = [(t0 + int(float(ms) * 1e6), base64.b64decode(b64)) for ms, b64 in c["chunks"]]
    cap.size = sum(len(b) for _, b in cap.chunks)
    cap.ended_by = str(c.get("endedBy", "open"))
    cap.error = c.get("error")
    cap.t_end_ns = t0 + int(float(c.get("elapsedMs", 0)) * 1e6)
    return cap


def run(
    language: str, target: Target, body: dict[str, Any], budget: Budget | None
) -> list[SdkCall]:
    return (run_python if language == "python" else run_node)(target, body, budget)
