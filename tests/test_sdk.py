"""OAI-5 through the real SDKs: the tee keeps the bytes each SDK parsed, and the check compares the
SDK's text with chatconform's own parse of those same bytes.

Each test serves canned responses on 127.0.0.1 (a plain completion for `stream: false`, a stream for
`stream: true`): correct ones, ones the SDKs read differently from the bytes (OAI-5 FAILS), and broken
ones an SDK reads without complaint (OAI-4 FAILS and OAI-5 is not judged on them).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatconform import sdk
from chatconform.checks.completions import sdk_agrees
from chatconform.client import Client
from chatconform.target import Limits, Target, read_target_file

from harness import chatconform, reference

MODEL = "agt_canned"
TEXT = "Voilà— our hours: 09:00–21:00 ¡olé!"
PIECES = ["Voilà—", " our hours:", " 09:00–21:00", " ¡olé!"]
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "What are your hours?"}]}


def plain_json(content: Any = TEXT, **extra: Any) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_735_689_600,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            **extra,
        },
        ensure_ascii=False,
    ).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_735_689_600,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def stream_frames(done: bool = True, event: str | None = None, **extra: Any) -> list[bytes]:
    cs = [chunk({"role": "assistant", "content": ""}, **extra)]
    cs += [chunk({"content": p}, **extra) for p in PIECES]
    cs.append(chunk({}, "stop", **extra))
    head = f"event: {event}\n".encode() if event else b""
    frames = [head + b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in cs]
    return frames + ([b"data: [DONE]\n\n"] if done else [])


def response(status: int, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n{extra}"
    return (
        head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    )


def stream_head(content_type: str = "text/event-stream") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n".encode()


Reply = Callable[[dict[str, Any]], list[bytes]]  # request body -> the writes of the response


def canned(plain: bytes | None = None, stream: list[bytes] | None = None) -> Reply:
    def reply(body: dict[str, Any]) -> list[bytes]:
        if body.get("stream"):
            return stream if stream is not None else [stream_head(), *stream_frames()]
        return [plain if plain is not None else response(200, "application/json", plain_json())]

    return reply


class CannedServer:
    """Answers each POST on 127.0.0.1 with the writes `reply` gives for its JSON body."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def target(self, **limits: Any) -> Target:
        lim = Limits(**{"timeout": 5.0, "stream_timeout": 10.0, **limits})
        return Target(
            f"http://127.0.0.1:{self.port}/api/v1", api_key="flowyte_sk_test_canned", limits=lim
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                got = conn.recv(4096)
                if not got:
                    return
                data += got
            head, rest = data.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                got = conn.recv(65536)
                if not got:
                    break
                rest += got
            body = json.loads(rest or b"{}")
            self.bodies.append(body)
            for write in self.reply(body):
                conn.sendall(write)
                time.sleep(0.005)


@contextlib.contextmanager
def serving(reply: Reply) -> Iterator[CannedServer]:
    server = CannedServer(reply)
    try:
        yield server
    finally:
        server.stop()


def languages() -> list[Any]:
    why = sdk.node_unavailable()
    node = pytest.param("node", marks=pytest.mark.skipif(why is not None, reason=str(why)))
    return ["python", node]


def calls(language: str, reply: Reply, **limits: Any) -> dict[str, sdk.SdkCall]:
    with serving(reply) as server:
        result = sdk.run(language, server.target(**limits), BODY, None)
        # one request per call (the two calls are sent at once: in either order)
        assert sorted(str(b.get("stream")) for b in server.bodies) == ["None", "True"]
    return {c.mode: c for c in result}


def rules_of(out: Any) -> set[str]:
    return {f.rule for f in out}


# -- a correct server ------------------------------------------------------------------------


@pytest.mark.parametrize("language", languages())
def test_correct_server_agrees_on_the_same_bytes(language: str) -> None:
    got = calls(language, canned())
    for mode, call in got.items():
        assert call.error is None, call.error
        assert call.text == TEXT
        assert call.exchange is not None
        out = sdk_agrees(call, MODEL)
        assert out == [], [f.message for f in out]
        assert out.examined[("OAI-5", f"{language}-{mode}")] == 1
    stream = got["stream"].exchange
    assert stream is not None
    assert stream.stream is not None
    # the copy is the whole response, though the Python SDK stops reading at [DONE]
    assert stream.stream.ended_by == "eof"
    assert stream.stream.events[-1].data == "[DONE]"
    assert stream.request_headers.get("authorization", "").endswith("flowyte_sk_test_canned")
    assert json.loads(stream.request_body or b"{}")["stream"] is True


def test_python_copy_of_a_gzipped_reply_is_decoded() -> None:
    reply = response(
        200, "application/json", gzip.compress(plain_json()), "Content-Encoding: gzip\r\n"
    )
    got = calls("python", canned(plain=reply))
    out = sdk_agrees(got["plain"], MODEL)
    assert got["plain"].text == TEXT
    assert out == []
    assert out.examined[("OAI-5", "python-plain")] == 1


# -- servers an SDK reads differently from the bytes: OAI-5 FAILS ----------------------------


@pytest.mark.parametrize("language", languages())
def test_error_member_in_chunks_breaks_both_sdks(language: str) -> None:
    """Unknown fields are allowed by OAI-4, but an `error` member in each chunk makes the SDKs raise."""
    frames = stream_frames(error={"message": "none", "type": "none"})
    got = calls(language, canned(stream=[stream_head(), *frames]))
    out = sdk_agrees(got["stream"], MODEL)
    assert got["stream"].error is not None
    assert rules_of(out) == {"OAI-5"}
    assert {f.clause for f in out} == {f"{language}-stream"}
    assert out.examined[("OAI-5", f"{language}-stream")] == 1


def test_plain_reply_as_text_plain_breaks_the_node_sdk_only() -> None:
    if sdk.node_unavailable():
        pytest.skip(str(sdk.node_unavailable()))
    reply = canned(plain=response(200, "text/plain", plain_json()))
    node = sdk_agrees(calls("node", reply)["plain"], MODEL)
    assert rules_of(node) == {"OAI-5"}
    assert [f.clause for f in node] == ["node-plain"]
    python = sdk_agrees(calls("python", reply)["plain"], MODEL)
    assert python == []
    assert python.examined[("OAI-5", "python-plain")] == 1


def test_invalid_utf8_in_a_chunk_breaks_the_python_sdk() -> None:
    frames = stream_frames()
    frames[2] = frames[2].replace(b"our", b"o\xffr")
    out = sdk_agrees(calls("python", canned(stream=[stream_head(), *frames]))["stream"], MODEL)
    assert rules_of(out) == {"OAI-5"}
    assert out.examined[("OAI-5", "python-stream")] == 1


# -- broken bytes an SDK accepts silently: OAI-4 FAILS, OAI-5 not judged ----------------------


@pytest.mark.parametrize("language", languages())
def test_stream_without_done_is_oai4_and_leaves_oai5_not_judged(language: str) -> None:
    got = calls(language, canned(stream=[stream_head(), *stream_frames(done=False)]))
    call = got["stream"]
    assert call.error is None
    assert call.text == TEXT
    out = sdk_agrees(call, MODEL)
    assert rules_of(out) == {"OAI-4"}
    assert (("OAI-5", f"{language}-stream")) not in out.examined
    assert "see OAI-4" in out.unexercised[("OAI-5", f"{language}-stream")]


@pytest.mark.parametrize("language", languages())
def test_stream_answered_with_json_is_oai4(language: str) -> None:
    reply = canned(stream=[response(200, "application/json", plain_json())])
    out = sdk_agrees(calls(language, reply)["stream"], MODEL)
    assert rules_of(out) == {"OAI-4"}
    assert ("OAI-5", f"{language}-stream") in out.unexercised


# -- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", languages())
def test_a_stream_that_never_ends_is_cut_at_the_deadline(language: str) -> None:
    def endless(body: dict[str, Any]) -> list[bytes]:
        if not body.get("stream"):
            return [response(200, "application/json", plain_json())]
        return [stream_head(), *([b": keep-alive\n\n"] * 400)]  # 400 x 5 ms: 2 s, no [DONE]

    started = time.monotonic()
    got = calls(language, endless, timeout=1.0, stream_timeout=1.0)
    assert time.monotonic() - started < 15
    call = got["stream"]
    assert call.exchange is not None
    assert call.exchange.stream is not None
    assert call.exchange.stream.ended_by == "timeout"
    out = sdk_agrees(call, MODEL)
    assert "OAI-4" in rules_of(out)


# -- a whole run against an agent whose replies vary ------------------------------------------


def test_random_replies_really_vary() -> None:
    with reference("--variation", "random-replies") as server:
        values = read_target_file(server.credentials)
        assert values["deterministic"] is False
        target = Target(**values)  # type: ignore[arg-type]
        body = {**BODY, "model": target.agent_id}
        with Client(target) as api:
            texts = {api.completion(body).json()["choices"][0]["message"]["content"] for _ in "ab"}
    assert len(texts) == 2


def test_strict_completions_run_against_random_replies(tmp_path: Path) -> None:
    """OAI-5 compares each SDK with its own bytes, so it PASSES; OAI-6 is SKIP, as the target does
    not declare the agent deterministic. Declared anyway (FLOWYTE_DETERMINISTIC=1), OAI-6 FAILS."""
    with reference("--variation", "random-replies") as server:
        args = (
            "run",
            "--strict",
            "--suite",
            "completions",
            "--target-file",
            str(server.credentials),
        )
        run = chatconform(*args, report_dir=tmp_path / "undeclared")
        declared = chatconform(  # only the Python SDK this time: OAI-5 partly exercised
            *args, "--sdk", "python", report_dir=tmp_path / "declared",
            env={"FLOWYTE_DETERMINISTIC": "1"},
        )  # fmt: skip
    assert run.code == 0, run.stdout[-3000:] + run.stderr[-2000:]
    rules = {r["id"]: r for r in run.summary["rules"]}
    assert rules["OAI-5"]["verdict"] == "PASS"
    want = {"python-plain", "python-stream"}
    if sdk.node_unavailable() is None:
        want |= {"node-plain", "node-stream"}
    assert {c["id"] for c in rules["OAI-5"]["clauses"] if c["verdict"] == "PASS"} == want
    assert rules["OAI-6"]["verdict"] == "SKIP"
    assert rules["OAI-6"]["reason"].startswith("agent not declared deterministic")
    assert run.summary["target"]["deterministic"] is False
    assert declared.code == 1
    assert declared.failed() == {"OAI-6"}
    oai5 = next(r for r in declared.summary["rules"] if r["id"] == "OAI-5")
    assert oai5["verdict"] == "PASS"  # what ran passed; what was left out is said, not passed
    assert {c["id"]: c["verdict"] for c in oai5["clauses"]} == {
        "python-plain": "PASS", "python-stream": "PASS", "node-plain": "SKIP", "node-stream": "SKIP",
    }  # fmt: skip
    assert "node-plain not run: --sdk python leaves the node SDK out" in oai5["reason"]


def test_sdk_option_names_languages_or_none(tmp_path: Path) -> None:
    assert sdk.parse_languages("python,node") == ("python", "node")
    assert sdk.parse_languages(" Node ") == ("node",)
    assert sdk.parse_languages("none") == ()
    for bad in ("java", "", "python,ruby"):
        with pytest.raises(ValueError, match="a comma list of python, node, or none"):
            sdk.parse_languages(bad)
    run = chatconform("run", "--sdk", "java", report_dir=tmp_path)
    assert run.code == 2
    assert "--sdk 'java': a comma list of python, node, or none" in run.stderr
    assert "Traceback" not in run.stderr
