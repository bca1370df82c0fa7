"""Self-tests of the fuzz suite: clean against the reference, each fuzz-only fault caught with its rule,
failures reproducible from the printed seed; plus the pieces (rule mapping, stream check, toml)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from schemathesis.generation.overrides import Override

from chatconform.fuzz import Fuzzer, FuzzSettings, contract
from chatconform.fuzz.streams import ContractViolation, stream_findings
from chatconform.paths import resource
from chatconform.record import Exchange, StreamRecord
from chatconform.target import Target, read_target_file

from harness import chatconform, reference

REPO = Path(__file__).resolve().parents[1]


# -- pieces ---------------------------------------------------------------------------------
def test_toml_matches_contract() -> None:
    """schemathesis.toml says what the fuzz suite does (one contract, two entry points)."""
    toml = tomllib.loads((REPO / "schemathesis.toml").read_text(encoding="utf-8"))
    assert toml["hooks"] == "chatconform.fuzz.hooks"
    for name, table in contract.checks_table().items():
        assert toml["checks"][name]["expected-statuses"] == table["expected-statuses"], name
    ops = {o["include-operation-id"]: o for o in toml["operations"]}
    for op_id in contract.POSITIVE_EXTRA:
        want = contract.checks_table(op_id)["positive_data_acceptance"]["expected-statuses"]
        assert ops[op_id]["checks"]["positive_data_acceptance"]["expected-statuses"] == want


@pytest.mark.parametrize(
    ("check", "path", "method", "status", "message", "rule"),
    [
        ("not_a_server_error", "/chat/sessions", "POST", 500, "", "ERR-4"),
        ("negative_data_rejection", "/chat/sessions", "POST", 500, "", "ERR-4"),
        ("negative_data_rejection", "/chat/sessions", "POST", 201, "", "ERR-2"),
        (
            "positive_data_acceptance",
            "/chat/sessions/{sessionId}/messages",
            "POST",
            400,
            "",
            "MSG-1",
        ),
        ("ignored_auth", "/chat/sessions/{sessionId}", "GET", 200, "", "AUTH-1"),
        (
            "response_schema_conformance",
            "/chat/sessions/{sessionId}/messages",
            "POST",
            400,
            "Schema at /components/schemas/ValidationProblem/allOf/1:",
            "ERR-2",
        ),
        (
            "response_schema_conformance",
            "/chat/sessions/{sessionId}",
            "GET",
            200,
            "Schema at /components/schemas/Session/properties/createdAt:",
            "SES-4",
        ),
        ("response_schema_conformance", "/chat/sessions/{sessionId}", "GET", 404, "", "SES-7"),
        ("content_type_conformance", "/chat/sessions", "POST", 404, "", "ERR-1"),
    ],
)
def test_failure_to_rule(
    check: str, path: str, method: str, status: int, message: str, rule: str
) -> None:
    op_id = contract.operation_of(method, path)["operationId"]
    got = contract.rule_for_failure(
        check,
        method=method,
        path_template=path,
        operation_id=op_id,
        status=status,
        message=message,
        streamed=False,
    )
    assert got == rule


def _stream_exchange(url: str, body: bytes, wire: bytes) -> Exchange:
    ex = Exchange("POST", url, {}, body, status=200)
    ex.headers = {"content-type": "text/event-stream"}
    ex.stream = StreamRecord()
    ex.stream.feed(wire, 1)
    ex.stream.close("eof")
    return ex


def test_stream_check_termination() -> None:
    """The SSE-aware check runs chatconform's parser and checks: a stream without done is SSE-5."""
    frame = (
        b'event: agent_message\ndata: {"id":"e1","conversationId":"s1","seq":1,"tsMs":1,'
        b'"channel":"chat","eventType":"agent_message","payload":{"messageId":"m","delta":"hi"}}\n\n'
    )
    ex = _stream_exchange("http://h/api/v1/chat/sessions/s1/messages", b'{"content":"x"}', frame)
    rules = {f.rule for f in stream_findings(ex, "postMessage")}
    assert "SSE-5" in rules
    chunk = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"a","choices":[]}\n\n'
    ex = _stream_exchange("http://h/api/v1/chat/completions", b'{"model":"a"}', chunk)
    found = stream_findings(ex, "createChatCompletion")
    assert any(f.rule == "OAI-4" and "[DONE]" in f.expected for f in found)
    violation = ContractViolation(operation="POST /chat/completions", findings=found)
    assert "OAI-4" in violation.title


def test_openai_leniency() -> None:
    body = {"model": "a", "messages": [{"role": "user", "content": "x"}], "user": None}
    assert contract.tolerated_negative("createChatCompletion", body)
    assert not contract.tolerated_negative("createChatCompletion", {"model": "a"})
    assert not contract.tolerated_negative("createSession", {"agentId": 1})


def test_same_seed_same_cases() -> None:
    """The fuzzing phase draws the same cases from the same seed, and others from another."""

    def bodies(target: Target, seed: int) -> list[bytes | None]:
        fz = Fuzzer(target, FuzzSettings(seed=seed, max_examples=8))
        try:
            op = fz.schema["/chat/sessions"]["POST"]
            fz.run_operation(op, Override())
            return [ex.request_body for ex in fz.log]
        finally:
            fz.close()

    with reference() as server:
        target = Target(**read_target_file(server.credentials))  # type: ignore[arg-type]
        first, again, other = bodies(target, 2024), bodies(target, 2024), bodies(target, 2025)
    assert first == again
    assert first != other


# -- the suite end to end ---------------------------------------------------------------------
def test_reference_passes_strict(tmp_path: Path) -> None:
    run = chatconform("run", "--strict", "--suite", "fuzz", "--seed", "99", report_dir=tmp_path)
    assert run.code == 0, run.stdout + run.stderr
    assert not run.failed()
    assert "seed 99" in run.stdout
    assert (tmp_path / "schemathesis-junit.xml").is_file()
    assert 'name="fuzz_seed" value="99"' in (tmp_path / "junit.xml").read_text(encoding="utf-8")


FAULTS = [
    ("long-content-500", {"ERR-4"}),
    ("nonstring-agent-500", {"ERR-4"}),
    ("missing-errors-array", {"ERR-2"}),
]


@pytest.mark.parametrize(("fault", "rules"), FAULTS)
def test_fuzz_only_faults(tmp_path: Path, fault: str, rules: set[str]) -> None:
    env = {"CHATCONFORM_REFERENCE_ARGS": f"--fault {fault}"}
    args = ("run", "--strict", "--suite", "fuzz", "--seed", "12345", "--max-examples", "3")
    run = chatconform(*args, report_dir=tmp_path / "a", env=env)
    assert run.code == 1, run.stdout + run.stderr
    assert rules <= run.failed(), run.failed()
    summary = (tmp_path / "a" / "summary.json").read_text(encoding="utf-8")
    assert "$FLOWYTE_API_KEY" in summary
    assert "flowyte_sk_" not in summary
    if fault != "nonstring-agent-500":
        return
    # the failure reproduces from its printed seed: same seed, same failing case
    seed = re.search(r"seed (\d+)", run.stdout)
    assert seed is not None
    assert seed.group(1) == "12345"
    again = chatconform(*args, report_dir=tmp_path / "b", env=env)
    assert again.code == 1

    def failing(r: object) -> list[str]:
        out = []
        for rule in r.summary["rules"]:  # type: ignore[attr-defined]
            if rule["id"] in rules:
                for f in rule["findings"]:
                    out.append(re.sub(r"127\.0\.0\.1:\d+", "HOST", f["reproduce"] or ""))
        return out

    assert failing(run) == failing(again)
    assert resource("suites").joinpath("test_fuzz.py").is_file()
