"""Self-tests of the embedded reference server, over real HTTP on loopback.

Every server runs as a subprocess (``python -m chatconform.reference --port 0``) and is always
terminated. The SSE parsing here is deliberately local and minimal: the reference shares no code
with the harness, and neither do its tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
START_TIMEOUT_S = 15.0

FAULTS = [
    "no-terminal",
    "frame-after-done",
    "two-terminals",
    "wrong-content-type",
    "event-name-mismatch",
    "seq-gap",
    "no-final-blank-line",
    "buffered",
    "history-missing-assistant",
    "history-newest-first",
    "ended-accepts",
    "readonly-can-post",
    "cross-tenant-read",
    "publishable-accepted",
    "plain-json-errors",
    "invalid-json-500",
    "completion-no-done",
    "completion-event-lines",
    "unknown-model-404",
    "long-content-500",
    "nonstring-agent-500",
    "missing-errors-array",
    "invalid-json-accepted",
    "missing-model-accepted",
    "nonarray-messages-accepted",
    "no-terminal-once",
]
VARIATIONS = [
    "crlf",
    "cr",
    "keepalive",
    "nospace",
    "split-data",
    "bom",
    "extra",
    "dribble",
    "lenient",
]
COMBO = ("crlf", "keepalive", "nospace", "split-data", "bom", "extra", "dribble")


# --------------------------------------------------------------------------- server processes


@dataclass
class Ref:
    """A running reference server and its credentials."""

    proc: subprocess.Popen[bytes]
    creds_path: Path
    creds: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return str(self.creds["baseUrl"])

    def auth(self, key: str = "apiKey") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds[key]}"}

    def wait_ready(self) -> Ref:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.creds_path.exists():
                self.creds = json.loads(self.creds_path.read_text())
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early with {self.proc.returncode}")
            time.sleep(0.02)
        stop(self.proc)
        raise AssertionError("server did not write its credentials in time")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


def launch(tmp: Path, *args: str, name: str = "ref") -> Ref:
    """Start a server (without waiting); stdout is piped, stderr goes to a file in ``tmp``."""
    creds = tmp / f"{name}.credentials.json"
    cmd = [sys.executable, "-m", "chatconform.reference", "--port", "0"]
    cmd += ["--credentials-out", str(creds), *args]
    with open(tmp / f"{name}.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=_env(), bufsize=0)
    return Ref(proc, creds)


def stop(proc: subprocess.Popen[bytes], sig: int | None = signal.SIGTERM) -> int:
    """Stop one server we started (by its own pid), bounded in time; ``sig`` None: just wait."""
    if proc.poll() is None and sig is not None:
        proc.send_signal(sig)
    if proc.poll() is None:
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def stop_all(servers: list[Ref], sig: int = signal.SIGTERM) -> None:
    """Stop several servers (signal them all, then wait for each); each must exit 0."""
    for server in servers:
        if server.proc.poll() is None:
            server.proc.send_signal(sig)
    codes = {server.creds_path.name: stop(server.proc, None) for server in servers}
    assert set(codes.values()) == {0}, codes


def read_stdout_lines(proc: subprocess.Popen[bytes], count: int, timeout: float = 5.0) -> list[str]:
    assert proc.stdout is not None
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < count and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode().splitlines()


@pytest.fixture(scope="module")
def ref_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def ref(ref_tmp: Path) -> Iterator[Ref]:
    server = launch(ref_tmp, "--ttft-ms", "20", "--itl-ms", "5", name="main").wait_ready()
    yield server
    stop(server.proc)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as c:
        yield c


# --------------------------------------------------------------------------- SSE (test-local)


@dataclass
class Stream:
    status: int
    headers: httpx.Headers
    raw: bytes
    events: list[tuple[str, str]]
    pending: bool  # an event or line left without its terminating blank line / line end
    comments: int
    first_byte_ms: float
    first_delta_ms: float | None


def parse_sse(raw: bytes) -> tuple[list[tuple[str, str]], bool, int]:
    """WHATWG event-stream parsing (enough for these tests): (events, pending, comment count)."""
    text = raw.decode("utf-8")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    tail = lines.pop()
    events: list[tuple[str, str]] = []
    event, data, comments = "", [], 0
    for line in lines:
        if line == "":
            if data:
                events.append((event or "message", "\n".join(data)))
            event, data = "", []
            continue
        if line.startswith(":"):
            comments += 1
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return events, bool(data) or bool(tail), comments


def post_stream(
    client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]
) -> Stream:
    t0 = time.monotonic()
    first_byte = None
    first_delta = None
    raw = b""
    with client.stream("POST", url, json=body, headers=headers) as r:
        for chunk in r.iter_raw():
            now = (time.monotonic() - t0) * 1000
            first_byte = first_byte if first_byte is not None else now
            raw += chunk
            if first_delta is None and (b"agent_message" in raw or b'"content":"V' in raw):
                first_delta = now
            assert len(raw) < 5_000_000
    events, pending, comments = parse_sse(raw)
    return Stream(r.status_code, r.headers, raw, events, pending, comments, first_byte or 0.0,
                  first_delta)  # fmt: skip


def new_session(client: httpx.Client, ref: Ref, **extra: Any) -> str:
    body = {"agentId": ref.creds["agentId"], **extra}
    r = client.post(f"{ref.base}/chat/sessions", json=body, headers=ref.auth())
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


def stream_turn(
    client: httpx.Client, ref: Ref, sid: str, content: str, key: str = "apiKey"
) -> Stream:
    url = f"{ref.base}/chat/sessions/{sid}/messages"
    return post_stream(client, url, ref.auth(key), {"content": content, "stream": True})


def post_turn(
    client: httpx.Client, ref: Ref, sid: str, content: str, key: str = "apiKey"
) -> httpx.Response:
    url = f"{ref.base}/chat/sessions/{sid}/messages"
    return client.post(url, json={"content": content}, headers=ref.auth(key))


def history(client: httpx.Client, ref: Ref, sid: str, limit: int = 100) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = client.get(
            f"{ref.base}/chat/sessions/{sid}/messages", params=params, headers=ref.auth()
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True
        assert body["pagination"]["limit"] == limit
        items += body["data"]
        cursor = body["pagination"]["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


def audit_events(stream: Stream) -> list[tuple[str, dict[str, Any]]]:
    return [(name, json.loads(data)) for name, data in stream.events]


def assert_well_formed_session_stream(stream: Stream, sid: str) -> list[dict[str, Any]]:
    """SSE-1..7 on a correct stream; returns the done frame's messages."""
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert not stream.pending, stream.raw[-200:]
    events = audit_events(stream)
    assert events[-1][0] == "done"
    assert [n for n, _ in events].count("done") == 1
    ids = set()
    last_ts = 0
    for seq, (name, data) in enumerate(events, start=1):
        assert data["eventType"] == name
        assert data["seq"] == seq
        assert data["conversationId"] == sid
        assert data["channel"] == "chat"
        assert isinstance(data["payload"], dict)
        assert data["tsMs"] >= last_ts
        last_ts = data["tsMs"]
        ids.add(data["id"])
    assert len(ids) == len(events)
    messages: list[dict[str, Any]] = events[-1][1]["messages"]
    text = "".join(d["payload"]["delta"] for n, d in events if n == "agent_message")
    assert messages[-1]["role"] == "assistant"
    assert messages[-1]["content"] == text
    return messages


def assert_well_formed_history(items: list[dict[str, Any]]) -> None:
    """Each user message is followed by its turn, which ends with an assistant reply."""
    assert items, "empty history"
    assert items[0]["role"] == "user"
    for i, m in enumerate(items):
        if m["role"] == "user" and i > 0:
            prev = items[i - 1]
            assert prev["role"] == "assistant", items
            assert not prev.get("toolCalls"), items
    assert items[-1]["role"] == "assistant"


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status, body
    assert body["code"] == code, body
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["type"] == f"https://docs.flowyte.com/errors/{code}"
    return body


# --------------------------------------------------------------------------- startup, CLI


def test_startup_output_and_credentials_file(ref: Ref) -> None:
    lines = read_stdout_lines(ref.proc, 2)
    assert lines == [
        f"chatconform reference server: {ref.base}",
        f"credentials: {ref.creds_path}",
    ]
    assert ref.creds_path.stat().st_mode & 0o777 == 0o600
    c = ref.creds
    assert c["pid"] == ref.proc.pid
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", c["baseUrl"])
    for key in ("apiKey", "readOnlyKey", "writeOnlyKey", "otherTenantKey"):
        assert c[key].startswith("flowyte_sk_test_")
        assert len(c[key]) > 30
    assert c["publishableKey"].startswith("flowyte_pk_")
    assert len({c["apiKey"], c["readOnlyKey"], c["writeOnlyKey"], c["otherTenantKey"]}) == 4
    assert len({c["agentId"], c["unpublishedAgentId"], c["otherTenantAgentId"]}) == 3


@pytest.mark.parametrize(("flag", "value"), [("--fault", "nope"), ("--variation", "nope")])
def test_unknown_switch_exits_2_with_one_line(flag: str, value: str) -> None:
    cmd = [sys.executable, "-m", "chatconform.reference", flag, value]
    done = subprocess.run(cmd, capture_output=True, env=_env(), timeout=20, check=False)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert ("no-terminal" in lines[0]) if flag == "--fault" else ("dribble" in lines[0])


# --------------------------------------------------------------------------- sessions & messages


def test_full_lifecycle(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    r = client.get(f"{ref.base}/chat/sessions/{sid}", headers=ref.auth())
    assert r.status_code == 200
    session = r.json()["data"]
    assert set(session) == {"id", "agentId", "status", "draftMode", "createdAt", "endedAt"}
    assert session["status"] == "active"
    assert session["draftMode"] is False
    assert session["endedAt"] is None
    assert session["createdAt"].endswith("Z")

    stream = stream_turn(client, ref, sid, "Tell me something nice")
    assert stream.headers["cache-control"] == "no-cache"
    done = assert_well_formed_session_stream(stream, sid)
    assert [m["role"] for m in done] == ["user", "assistant"]
    text = done[-1]["content"]
    assert any(ord(ch) > 127 for ch in text)
    deltas = [d for n, d in audit_events(stream) if n == "agent_message"]
    assert len(deltas) == 8
    assert {d["payload"]["messageId"] for d in deltas} == {done[-1]["id"]}

    items = history(client, ref, sid)
    assert items == done  # streamed text == stored history content (MSG-5)

    r = client.post(f"{ref.base}/chat/sessions/{sid}/end", headers=ref.auth())
    assert r.status_code == 200
    ended = r.json()["data"]
    assert ended["status"] == "ended"
    assert ended["endedAt"]
    again = client.post(f"{ref.base}/chat/sessions/{sid}/end", json={}, headers=ref.auth())
    assert again.status_code == 200
    assert again.json()["data"]["endedAt"] == ended["endedAt"]

    problem(post_turn(client, ref, sid, "still there?"), 409, "session_ended")
    problem(stream_turn_response(client, ref, sid), 409, "session_ended")
    assert history(client, ref, sid) == items
    r = client.get(f"{ref.base}/chat/sessions/{sid}", headers=ref.auth())
    assert r.json()["data"]["status"] == "ended"


def stream_turn_response(client: httpx.Client, ref: Ref, sid: str) -> httpx.Response:
    url = f"{ref.base}/chat/sessions/{sid}/messages"
    return client.post(url, json={"content": "x", "stream": True}, headers=ref.auth())


def test_plain_and_streamed_turns_match(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    plain = post_turn(client, ref, sid, "same words")
    assert plain.status_code == 200
    plain_msgs = plain.json()["data"]["messages"]
    streamed = assert_well_formed_session_stream(stream_turn(client, ref, sid, "same words"), sid)
    assert plain_msgs[-1]["content"] == streamed[-1]["content"]  # deterministic agent
    assert history(client, ref, sid) == plain_msgs + streamed


def test_zip_script(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    r = post_turn(client, ref, sid, "Is there a store near 94103?")
    assert r.status_code == 200
    msgs = r.json()["data"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    call = msgs[1]["toolCalls"][0]
    assert msgs[1]["content"] == ""
    assert call["name"] == "lookup_store"
    assert call["arguments"] == {"zip": "94103"}
    assert msgs[2]["toolCallId"] == call["id"]
    assert json.loads(msgs[2]["content"])["zip"] == "94103"
    knowledge = msgs[3]["knowledge"]
    assert knowledge
    assert 0 <= knowledge[0]["similarity"] <= 1
    for m in msgs:
        assert m["sessionId"] == sid
        assert m["createdAt"].endswith("Z")

    stream = stream_turn(client, ref, sid, "and near 10001?")
    done = assert_well_formed_session_stream(stream, sid)
    names = [n for n, _ in audit_events(stream)]
    assert names[:2] == ["kb_retrieval", "tool_call"]
    assert set(names[2:-1]) == {"agent_message"}
    tool = audit_events(stream)[1][1]["payload"]
    assert tool["toolCallId"] == done[1]["toolCalls"][0]["id"] == done[2]["toolCallId"]
    assert tool["arguments"] == {"zip": "10001"}
    kb = audit_events(stream)[0][1]["payload"]
    assert kb["query"] == "and near 10001?"
    assert kb["chunks"][0]["sourceUrl"]
    assert history(client, ref, sid) == msgs + done


def test_hours_script(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    stream = stream_turn(client, ref, sid, "What are your HOURS?")
    done = assert_well_formed_session_stream(stream, sid)
    names = [n for n, _ in audit_events(stream)]
    assert names[0] == "kb_retrieval"
    assert "tool_call" not in names
    assert [m["role"] for m in done] == ["user", "assistant"]
    assert (
        done[-1]["knowledge"][0]["id"] == audit_events(stream)[0][1]["payload"]["chunks"][0]["id"]
    )


def test_paging_gives_every_message_once(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    for text in ("one", "hours?", "zip 12345"):
        assert post_turn(client, ref, sid, text).status_code == 200
    full = history(client, ref, sid, limit=100)
    assert len(full) == 2 + 2 + 4
    assert_well_formed_history(full)
    for limit in (1, 3, 7):
        assert history(client, ref, sid, limit=limit) == full
    r = client.get(f"{ref.base}/chat/sessions/{sid}/messages", headers=ref.auth())
    assert r.json()["pagination"] == {"nextCursor": None, "limit": 50}


def test_draft_mode_and_agents(ref: Ref, client: httpx.Client) -> None:
    url = f"{ref.base}/chat/sessions"
    unpublished = ref.creds["unpublishedAgentId"]
    problem(client.post(url, json={"agentId": unpublished}, headers=ref.auth()), 409,
            "no_published_version")  # fmt: skip
    r = client.post(url, json={"agentId": unpublished, "draftMode": True}, headers=ref.auth())
    assert r.status_code == 201
    assert r.json()["data"]["draftMode"] is True
    for agent in ("agt_nope", ref.creds["otherTenantAgentId"]):
        problem(
            client.post(url, json={"agentId": agent}, headers=ref.auth()), 404, "agent_not_found"
        )
    r = client.post(url, json={"agentId": ref.creds["agentId"], "future": 1}, headers=ref.auth())
    assert r.status_code == 201  # unknown fields ignored


def test_unknown_session_is_404_everywhere(ref: Ref, client: httpx.Client) -> None:
    base = f"{ref.base}/chat/sessions/ses_unknown"
    h = ref.auth()
    problem(client.get(base, headers=h), 404, "session_not_found")
    problem(client.get(base + "/messages", headers=h), 404, "session_not_found")
    problem(client.post(base + "/messages", json={"content": "hi"}, headers=h), 404,
            "session_not_found")  # fmt: skip
    problem(client.post(base + "/end", headers=h), 404, "session_not_found")


# --------------------------------------------------------------------------- auth, tenancy


def test_auth_scopes_and_tenancy(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    assert post_turn(client, ref, sid, "hello").status_code == 200
    url = f"{ref.base}/chat/sessions/{sid}"
    key = ref.creds["apiKey"]
    for headers in (
        {},
        {"Authorization": key},
        {"Authorization": f"Basic {key}"},
        {"Authorization": "Bearer flowyte_sk_test_unknown"},
        {"Authorization": "Bearer"},
        {"X-Api-Key": key},
        {"Api-Key": key},
    ):
        body = problem(client.get(url, headers=headers), 401, "unauthorized")
        assert key not in json.dumps(body)
    problem(client.get(url, params={"api_key": key, "key": key}), 401, "unauthorized")
    for scheme in ("bearer", "BEARER", "bEaReR"):
        assert client.get(url, headers={"Authorization": f"{scheme} {key}"}).status_code == 200

    r = client.get(url, headers=ref.auth("publishableKey"))
    assert r.status_code in (401, 403)
    r = client.post(f"{ref.base}/chat/sessions", json={"agentId": ref.creds["agentId"]},
                    headers=ref.auth("publishableKey"))  # fmt: skip
    assert r.status_code in (401, 403)

    assert client.get(url, headers=ref.auth("readOnlyKey")).status_code == 200
    assert client.get(url + "/messages", headers=ref.auth("readOnlyKey")).status_code == 200
    problem(post_turn(client, ref, sid, "no", key="readOnlyKey"), 403, "insufficient_scope")
    problem(client.post(url + "/end", headers=ref.auth("readOnlyKey")), 403, "insufficient_scope")
    problem(client.get(url, headers=ref.auth("writeOnlyKey")), 403, "insufficient_scope")
    problem(client.get(url + "/messages", headers=ref.auth("writeOnlyKey")), 403,
            "insufficient_scope")  # fmt: skip
    assert post_turn(client, ref, sid, "yes", key="writeOnlyKey").status_code == 200

    other = ref.auth("otherTenantKey")
    for r in (
        client.get(url, headers=other),
        client.get(url + "/messages", headers=other),
        client.post(url + "/messages", json={"content": "hi"}, headers=other),
        client.post(url + "/end", headers=other),
    ):
        body = problem(r, 404, "session_not_found")
        assert sid not in r.text, body
        assert ref.creds["agentId"] not in r.text, body
    assert client.get(url, headers=ref.auth()).json()["data"]["status"] == "active"
    assert len(history(client, ref, sid)) == 4


# --------------------------------------------------------------------------- 400s


def test_validation_errors(ref: Ref, client: httpx.Client) -> None:
    h = ref.auth()
    sessions = f"{ref.base}/chat/sessions"
    sid = new_session(client, ref)
    msgs = f"{sessions}/{sid}/messages"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (sessions, {"content": b"{not json"}, "body"),
        (sessions, {"content": b"[1, 2]"}, "body"),
        (sessions, {"content": b""}, "body"),
        (sessions, {"json": {}}, "agentId"),
        (sessions, {"json": {"agentId": 123}}, "agentId"),
        (sessions, {"json": {"agentId": None}}, "agentId"),
        (sessions, {"json": {"agentId": ""}}, "agentId"),
        (sessions, {"json": {"agentId": ref.creds["agentId"], "draftMode": "yes"}}, "draftMode"),
        (msgs, {"json": {}}, "content"),
        (msgs, {"json": {"content": 5}}, "content"),
        (msgs, {"json": {"content": ""}}, "content"),
        (msgs, {"json": {"content": "x" * 32_001}}, "content"),
        (msgs, {"json": {"content": "x", "stream": "yes"}}, "stream"),
        (msgs, {"content": b'{"content": "\\ud800"}'}, "content"),
        (msgs, {"content": b"\xff\xfe"}, "body"),
        (f"{sessions}/ses_unknown/messages", {"json": {"content": 5}}, "content"),
    ]
    for url, kwargs, fld in cases:
        r = client.post(url, headers=h, **kwargs)
        body = problem(r, 400, "validation_error")
        assert fld in [e["field"] for e in body["errors"]], (url, kwargs, body)
    assert post_turn(client, ref, sid, "x" * 32_000).status_code == 200
    for params, fld in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                        ({"limit": "abc"}, "limit"), ({"cursor": "garbage!"}, "cursor"),
                        ({"cursor": "c2VzX290aGVyfDE"}, "cursor")):  # fmt: skip
        body = problem(client.get(msgs, params=params, headers=h), 400, "validation_error")
        assert body["errors"][0]["field"] == fld
    r = client.post(f"{sessions}/{sid}/end", content=b"{oops", headers=h)
    problem(r, 400, "validation_error")
    problem(client.get(f"{ref.base}/nowhere", headers=h), 404, "not_found")
    r = client.delete(sessions, headers=h)
    problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


def test_rate_limit_on_session_reads(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    url = f"{ref.base}/chat/sessions/{sid}"
    answers = [client.get(url, headers=ref.auth()) for _ in range(40)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, "a burst of 40 reads of one session should be rate limited (20/s)"
    assert {r.status_code for r in answers} == {200, 429}
    for r in limited:
        problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
    assert answers[0].headers["ratelimit-limit"] == "20"
    # other sessions, other keys and other routes are unaffected
    assert client.get(url + "/messages", headers=ref.auth()).status_code == 200
    assert client.get(url, headers=ref.auth("readOnlyKey")).status_code == 200


# --------------------------------------------------------------------------- concurrency, drops


def test_concurrent_post_is_busy_or_serialized(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    url = f"{ref.base}/chat/sessions/{sid}/messages"
    with client.stream(
        "POST", url, json={"content": "first", "stream": True}, headers=ref.auth()
    ) as r1:
        assert r1.status_code == 200
        r2 = client.post(url, json={"content": "second"}, headers=ref.auth())
        raw = b"".join(r1.iter_raw())
    assert r2.status_code in (200, 409), r2.text
    if r2.status_code == 409:
        problem(r2, 409, "session_busy")
    assert b"event: done" in raw
    assert_well_formed_history(history(client, ref, sid))


def test_drop_mid_stream_keeps_history_well_formed(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    url = f"{ref.base}/chat/sessions/{sid}/messages"
    with client.stream(
        "POST", url, json={"content": "drop me", "stream": True}, headers=ref.auth()
    ) as r:
        for chunk in r.iter_raw():
            if b"agent_message" in chunk:
                break
    expected = post_turn(client, ref, new_session(client, ref), "drop me").json()["data"][
        "messages"
    ]
    items: list[dict[str, Any]] = []
    for _ in range(100):
        items = history(client, ref, sid)
        if len(items) >= 2:
            break
        time.sleep(0.02)
    assert [m["role"] for m in items] == ["user", "assistant"]
    assert items[-1]["content"] == expected[-1]["content"]  # complete, not partial
    assert post_turn(client, ref, sid, "still usable").status_code == 200
    items = history(client, ref, sid)
    assert len(items) == 4
    assert_well_formed_history(items)


def test_time_to_first_delta(ref: Ref, client: httpx.Client) -> None:
    sid = new_session(client, ref)
    stream = stream_turn(client, ref, sid, "timing")
    assert stream.first_delta_ms is not None
    print(f"\nreference --ttft-ms 20: first delta after {stream.first_delta_ms:.1f} ms")
    assert stream.first_delta_ms >= 19  # loose sanity bound only


# --------------------------------------------------------------------------- completions


def completion_stream_text(stream: Stream) -> str:
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert not stream.pending
    assert [n for n, _ in stream.events] == ["message"] * len(stream.events)
    assert stream.events[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in stream.events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[-1] == "stop"
    assert finishes.count(None) == len(chunks) - 1
    assert len({(c["id"], c["created"], c["model"], c["object"]) for c in chunks}) == 1
    assert chunks[0]["object"] == "chat.completion.chunk"
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def test_completions_raw_and_openai_sdk(ref: Ref, client: httpx.Client) -> None:
    url = f"{ref.base}/chat/completions"
    body = {
        "model": ref.creds["agentId"],
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "opening hours?"},
            {"role": "assistant", "content": "sure"},
            {"role": "user", "content": "store for 94103?"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
        "user": "u1",
    }
    r = client.post(url, json=body, headers=ref.auth())
    assert r.status_code == 200, r.text
    plain = r.json()
    assert "success" not in plain
    assert plain["object"] == "chat.completion"
    assert plain["id"].startswith("chatcmpl-")
    assert isinstance(plain["created"], int)
    assert plain["model"] == ref.creds["agentId"]
    choice = plain["choices"][0]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert "94103" in text
    streamed = completion_stream_text(
        post_stream(client, url, ref.auth(), {**body, "stream": True})
    )
    assert streamed == text

    sdk = openai.OpenAI(base_url=ref.base, api_key=ref.creds["apiKey"], timeout=10, max_retries=0)
    messages: Any = body["messages"]
    got = sdk.chat.completions.create(model=ref.creds["agentId"], messages=messages)
    assert got.choices[0].message.content == text
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in sdk.chat.completions.create(
            model=ref.creds["agentId"], messages=messages, stream=True
        )
        if chunk.choices
    ]
    assert "".join(pieces) == text
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="agt_unknown", messages=messages)
    assert "model" in str(info.value)


def test_completion_errors(ref: Ref, client: httpx.Client) -> None:
    url = f"{ref.base}/chat/completions"
    user = [{"role": "user", "content": "hi"}]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"model": "agt_unknown", "messages": user}, 400, "model_not_found"),
        ({"model": ref.creds["otherTenantAgentId"], "messages": user}, 400, "model_not_found"),
        ({"messages": user}, 400, "validation_error"),
        ({"model": ref.creds["agentId"]}, 400, "validation_error"),
        ({"model": ref.creds["agentId"], "messages": []}, 400, "validation_error"),
        ({"model": ref.creds["agentId"], "messages": [{"role": "wizard", "content": "x"}]}, 400,
         "validation_error"),
        ({"model": ref.creds["agentId"], "messages": [{"role": "user", "content": 7}]}, 400,
         "validation_error"),
        ({"model": ref.creds["agentId"], "messages": user, "stream": "yes"}, 400,
         "validation_error"),
    ]  # fmt: skip
    for body, status, code in cases:
        for stream in (False, True):
            payload = {**body, "stream": body.get("stream", stream)}
            err = problem(client.post(url, json=payload, headers=ref.auth()), status, code)
            assert err["error"]["code"] == code
            assert err["error"]["message"]
    err = problem(client.post(url, json={"model": "x", "messages": user}), 401, "unauthorized")
    assert err["error"]["type"] == "authentication_error"
    r = client.post(url, json={"model": ref.creds["agentId"], "messages": user},
                    headers=ref.auth("readOnlyKey"))  # fmt: skip
    problem(r, 403, "insufficient_scope")


# --------------------------------------------------------------------------- --calibration


def test_calibration_mode_reports_its_own_send_times(tmp_path: Path, client: httpx.Client) -> None:
    server = launch(tmp_path, "--calibration", "--ttft-ms", "30", "--itl-ms", "10", "--tokens",
                    "4", name="calibration").wait_ready()  # fmt: skip
    try:
        lines = read_stdout_lines(server.proc, 3)
        root = server.base.removesuffix("/api/v1")
        assert lines[2].startswith("calibration: ")
        assert ", cyclic GC past 500000 objects, " in lines[2]
        assert lines[2].endswith(f"send times at {root}/_calibration/send-times")
        body = {"model": server.creds["agentId"], "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
        for _ in range(2):  # the same wire as without --calibration
            st = post_stream(client, f"{server.base}/chat/completions", server.auth(), body)
            assert completion_stream_text(st)
        url = f"{root}/_calibration/send-times"
        got = client.get(url, params={"reset": "1"}).json()
        # 2 streams of 4 deltas: 2 first deltas, 3 gaps each, 8 due times, none early
        assert [got[k]["count"] for k in ("ttft_ms", "itl_ms", "late_ms")] == [2, 6, 8]
        assert 30 <= got["ttft_ms"]["p50"] <= got["ttft_ms"]["max"] < 30 + 2000
        assert 0 < got["itl_ms"]["p50"] < 2000
        assert got["late_ms"]["p50"] >= 0  # monotonic-clock deadlines: never handed over early
        # on uvloop + httptools (the [calibration] extra) every delta is written from the timer
        fast = all(importlib.util.find_spec(m) for m in ("uvloop", "httptools"))
        assert got["direct_writes"] == (8 if fast else 0)
        # per request (?requests=1): each response's id, receipt and first delta, wall clock
        per = client.get(url, params={"requests": "1"}).json()["requests"]
        assert per == []  # the reset above emptied it
        t_sent = time.time()
        st = post_stream(client, f"{server.base}/chat/completions", server.auth(), body)
        ids = {json.loads(data).get("id") for _, data in st.events if data.startswith("{")}
        (one,) = client.get(url, params={"requests": "1"}).json()["requests"]
        assert {one["id"]} == ids
        assert t_sent - 0.01 <= one["received_unix"] <= one["first_sent_unix"] - 0.030
        assert one["first_sent_unix"] <= time.time()
        client.get(url, params={"reset": "1"})
        after = client.get(url).json()["ttft_ms"]  # ?reset=1 started anew
        assert (after["count"], after["p50"]) == (0, None)
    finally:
        assert stop(server.proc) == 0


def test_normal_mode_has_no_calibration_route(ref: Ref, client: httpx.Client) -> None:
    root = ref.base.removesuffix("/api/v1")
    assert client.get(f"{root}/_calibration/send-times").status_code == 404


def test_calibration_takes_no_switch() -> None:
    cmd = [sys.executable, "-m", "chatconform.reference", "--calibration", "--variation", "crlf"]
    done = subprocess.run(cmd, capture_output=True, env=_env(), timeout=20, check=False)
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "--calibration takes no --fault or --variation"


# --------------------------------------------------------------------------- restart, durability


def test_restart_on_same_db_keeps_sessions(tmp_path: Path, client: httpx.Client) -> None:
    db = str(tmp_path / "chat.db")
    first = launch(tmp_path, "--db", db, name="first").wait_ready()
    try:
        sid = new_session(client, first)
        answered = post_turn(client, first, sid, "remember 02139").json()["data"]["messages"]
    finally:
        stop(first.proc, signal.SIGKILL)  # kill -9: an answered post must survive
    second = launch(tmp_path, "--db", db, name="second").wait_ready()
    try:
        assert second.creds["apiKey"] != first.creds["apiKey"]
        for key in ("agentId", "unpublishedAgentId", "otherTenantAgentId"):
            assert second.creds[key] == first.creds[key]
        r = client.get(f"{second.base}/chat/sessions/{sid}", headers=second.auth())
        assert r.status_code == 200
        assert r.json()["data"]["agentId"] == first.creds["agentId"]
        assert history(client, second, sid) == answered
        problem(client.get(f"{second.base}/chat/sessions/{sid}", headers=first.auth()), 401,
                "unauthorized")  # fmt: skip
    finally:
        assert stop(second.proc) == 0  # SIGTERM: clean exit 0


# --------------------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def fault_servers(ref_tmp: Path) -> Iterator[dict[str, Ref]]:
    servers: dict[str, Ref] = {}
    try:
        # four at a time: each start costs about a second of CPU, and 27 at once on 2 busy
        # cores outlast one server's start-up timeout
        for i in range(0, len(FAULTS), 4):
            batch = FAULTS[i : i + 4]
            for f in batch:
                # buffered: slow deltas, so "everything arrives at the end" is measurable from below
                knobs = ("50", "50") if f == "buffered" else ("10", "2")
                args = ("--ttft-ms", knobs[0], "--itl-ms", knobs[1], "--tokens", "4")
                servers[f] = launch(ref_tmp, "--fault", f, *args, name=f"fault-{f}")
            for f in batch:
                servers[f].wait_ready()
        yield servers
    finally:
        stop_all(list(servers.values()))


def _names(st: Stream) -> list[str]:
    return [n for n, _ in st.events]


def _fault_probe(fault: str, s: Ref, c: httpx.Client) -> None:
    """A quick check that ``fault`` breaks what it claims to break."""
    sid = new_session(c, s)

    def stream() -> Stream:
        return stream_turn(c, s, sid, "probe")

    names = _names
    comp = f"{s.base}/chat/completions"
    user = [{"role": "user", "content": "hi"}]
    if fault == "no-terminal":
        st = stream()
        assert "agent_message" in names(st)
        assert not {"done", "error"} & set(names(st))
    elif fault == "no-terminal-once":  # the first stream only: a flaky server
        assert not {"done", "error"} & set(names(stream()))
        sid = new_session(c, s)
        assert names(stream())[-1] == "done"
    elif fault == "frame-after-done":
        assert names(stream())[-2:] == ["done", "agent_message"]
    elif fault == "two-terminals":
        assert names(stream())[-2:] == ["done", "done"]
    elif fault == "wrong-content-type":
        st = stream()
        assert st.headers["content-type"].startswith("application/json")
    elif fault == "event-name-mismatch":
        st = stream()
        mismatched = [(n, json.loads(d)["eventType"]) for n, d in st.events]
        assert ("message", "agent_message") in mismatched
    elif fault == "seq-gap":
        seqs = [json.loads(d)["seq"] for _, d in stream().events]
        assert seqs != list(range(1, len(seqs) + 1))
    elif fault == "no-final-blank-line":
        st = stream()
        assert st.pending
        assert "done" not in names(st)
        assert st.raw.endswith(b"\n")
        assert not st.raw.endswith(b"\n\n")
    elif fault == "buffered":
        st = stream()
        print(f"\nbuffered: first body byte after {st.first_byte_ms:.0f} ms")
        assert st.first_byte_ms >= 150
        assert "done" in names(st)
    elif fault == "history-missing-assistant":
        assert "done" in names(stream())
        assert [m["role"] for m in history(c, s, sid)] == ["user"]
        assert post_turn(c, s, sid, "plain").status_code == 200
        assert [m["role"] for m in history(c, s, sid)] == ["user", "user", "assistant"]
    elif fault == "history-newest-first":
        assert post_turn(c, s, sid, "plain").status_code == 200
        assert [m["role"] for m in history(c, s, sid)] == ["assistant", "user"]
    elif fault == "ended-accepts":
        assert c.post(f"{s.base}/chat/sessions/{sid}/end", headers=s.auth()).status_code == 200
        assert post_turn(c, s, sid, "after end").status_code == 200
    elif fault == "readonly-can-post":
        assert post_turn(c, s, sid, "ro", key="readOnlyKey").status_code == 200
    elif fault == "cross-tenant-read":
        r = c.get(f"{s.base}/chat/sessions/{sid}", headers=s.auth("otherTenantKey"))
        assert r.status_code == 200
    elif fault == "publishable-accepted":
        r = c.post(f"{s.base}/chat/sessions", json={"agentId": s.creds["agentId"]},
                   headers=s.auth("publishableKey"))  # fmt: skip
        assert r.status_code == 201
    elif fault == "plain-json-errors":
        r = c.get(f"{s.base}/chat/sessions/ses_nope", headers=s.auth())
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/json"
    elif fault == "invalid-json-500":
        r = c.post(f"{s.base}/chat/sessions", content=b"{oops", headers=s.auth())
        assert r.status_code == 500
    elif fault == "completion-no-done":
        st = post_stream(c, comp, s.auth(), {"model": s.creds["agentId"], "messages": user,
                                             "stream": True})  # fmt: skip
        assert st.events
        assert "[DONE]" not in [d for _, d in st.events]
    elif fault == "completion-event-lines":
        st = post_stream(c, comp, s.auth(), {"model": s.creds["agentId"], "messages": user,
                                             "stream": True})  # fmt: skip
        assert "chunk" in names(st)
        assert st.events[-1][1] == "[DONE]"
    elif fault == "unknown-model-404":
        r = c.post(comp, json={"model": "agt_nope", "messages": user}, headers=s.auth())
        assert r.status_code == 404
    elif fault == "long-content-500":
        assert post_turn(c, s, sid, "x" * 32_001).status_code == 500
    elif fault == "nonstring-agent-500":
        r = c.post(f"{s.base}/chat/sessions", json={"agentId": 7}, headers=s.auth())
        assert r.status_code == 500
        problem(r, 500, "internal_error")
        assert "Traceback" not in r.text
    elif fault == "missing-errors-array":
        r = c.post(f"{s.base}/chat/sessions/{sid}/messages", json={}, headers=s.auth())
        assert r.status_code == 400
        assert "errors" not in r.json()
    elif fault == "invalid-json-accepted":
        r = c.post(f"{s.base}/chat/sessions", content=b"{oops", headers=s.auth())
        assert r.status_code == 201
        assert r.json()["data"]["agentId"] == s.creds["agentId"]
        r = c.post(f"{s.base}/chat/sessions", json={}, headers=s.auth())
        problem(r, 400, "validation_error")  # only invalid JSON is let through
    elif fault == "missing-model-accepted":
        r = c.post(comp, json={"messages": user}, headers=s.auth())
        assert r.status_code == 200
        r = c.post(comp, json={"model": 7, "messages": user}, headers=s.auth())
        problem(r, 400, "validation_error")  # only a missing model is let through
    elif fault == "nonarray-messages-accepted":
        r = c.post(comp, json={"model": s.creds["agentId"], "messages": "hi"}, headers=s.auth())
        assert r.status_code == 200
        r = c.post(comp, json={"model": s.creds["agentId"], "messages": []}, headers=s.auth())
        problem(r, 400, "validation_error")  # an empty array is still refused
    else:
        raise AssertionError(f"no probe for {fault}")


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_starts_and_bites(
    fault: str, fault_servers: dict[str, Ref], client: httpx.Client
) -> None:
    _fault_probe(fault, fault_servers[fault], client)


# --------------------------------------------------------------------------- variations


@pytest.fixture(scope="module")
def variation_servers(ref_tmp: Path) -> Iterator[dict[str, Ref]]:
    wanted: dict[str, tuple[str, ...]] = {v: (v,) for v in VARIATIONS}
    wanted["combo"] = COMBO
    servers = {}
    for name, variations in wanted.items():
        args = [a for v in variations for a in ("--variation", v)]
        servers[name] = launch(ref_tmp, *args, "--tokens", "5", name=f"variation-{name}")
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        stop_all(list(servers.values()), signal.SIGINT)


def test_lenient_variation_accepts_only_what_the_contract_allows(
    variation_servers: dict[str, Ref], ref: Ref, client: httpx.Client
) -> None:
    """`lenient` accepts a tool message without content, a `user` that is no string and any body
    of /end, which the default server refuses; an odd message `name` both accept; what the contract
    lists (OAI-2) both still refuse."""
    comp = "/chat/completions"
    tool = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c1"}]
    odd_name = [{"role": "user", "content": "hi", "name": 7}]
    for server, ok in ((variation_servers["lenient"], True), (ref, False)):
        agent = server.creds["agentId"]
        for body in ({"model": agent, "messages": tool}, {"model": agent, "messages": odd_name,
                                                         "user": {"id": 1}}):  # fmt: skip
            r = client.post(server.base + comp, json=body, headers=server.auth())
            assert (r.status_code == 200) == ok, (ok, body, r.text)
        body = {"model": agent, "messages": odd_name}
        assert client.post(server.base + comp, json=body, headers=server.auth()).status_code == 200
        sid = new_session(client, server)
        r = client.post(f"{server.base}/chat/sessions/{sid}/end", content=b"\n[1]",
                        headers=server.auth())  # fmt: skip
        assert (r.status_code == 200) == ok, r.text
        for bad in (
            {"messages": tool},
            {"model": agent, "messages": "hi"},
            {"model": agent, "messages": [{"role": "bot", "content": "x"}]},
        ):
            r = client.post(server.base + comp, json=bad, headers=server.auth())
            problem(r, 400, "validation_error")


@pytest.mark.parametrize("name", [*VARIATIONS, "combo"])
def test_variation_starts_and_stays_valid(
    name: str, variation_servers: dict[str, Ref], client: httpx.Client
) -> None:
    s = variation_servers[name]
    on = set(COMBO if name == "combo" else (name,))
    sid = new_session(client, s)
    st = stream_turn(client, s, sid, "zip 94103 please")
    done = assert_well_formed_session_stream(st, sid)
    assert history(client, s, sid) == done
    assert ("latency" in [n for n, _ in st.events]) == ("extra" in on)
    assert st.raw.startswith(b"\xef\xbb\xbf") == ("bom" in on)
    assert (b"\r\n" in st.raw) == ("crlf" in on)
    assert (b"\n" not in st.raw) == ("cr" in on)
    assert (st.comments > 0) == ("keepalive" in on)
    assert (b"data:{" in st.raw) == ("nospace" in on)
    data_lines = len(re.findall(rb"(?:^|[\r\n])data:", st.raw))
    assert (data_lines > len(st.events)) == ("split-data" in on)
    assert ('"xFlowyteExtra"' in st.events[0][1]) == ("extra" in on)

    url = f"{s.base}/chat/completions"
    body = {"model": s.creds["agentId"], "messages": [{"role": "user", "content": "hours?"}]}
    plain = client.post(url, json=body, headers=s.auth()).json()
    text = completion_stream_text(post_stream(client, url, s.auth(), {**body, "stream": True}))
    assert text == plain["choices"][0]["message"]["content"]
    sdk = openai.OpenAI(base_url=s.base, api_key=s.creds["apiKey"], timeout=10, max_retries=0)
    chunks = sdk.chat.completions.create(model=s.creds["agentId"], messages=body["messages"],
                                         stream=True)  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
