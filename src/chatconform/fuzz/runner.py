"""Schemathesis over specs/chat-api.yaml, with chatconform's bounded client and contract mapping.

How it is wired (Schemathesis 4 APIs):

- `schemathesis.openapi.from_path(SPEC_PATH, config=SchemathesisConfig.from_dict(...))`: the spec,
  with the contract's check settings (`contract.schemathesis_settings`), Bearer auth with the target's
  key (in memory only) and the target's agent id substituted for `agentId` / `model` through
  Schemathesis's `parameters` overrides (`body.agentId`, `body.model`);
- stateless: `schemathesis.generation.hypothesis.builder.create_test` per operation (what the pytest
  plugin and the runner use), in the examples, coverage and fuzzing phases, positive and negative,
  with an `Override` pinning `{sessionId}` to a real session of the target; every case is sent by
  `chatconform.client.Client` (bounded in time and bytes, a stream parsed as it arrives) and the
  response validated with `case.validate_response(...)` against the built-in checks and the
  SSE-aware `chatconform_event_stream` check;
- stateful: `schema.as_state_machine()` (the spec's links), with `step` sending through the same
  client and adding the model checks (a created session is gettable, history grows by what each
  post returned, an ended session refuses posts) and the tenancy replays;
- every failure becomes a `Finding` for the rule it breaks (`contract.rule_for_failure`), and
  Schemathesis's `JunitXmlWriter` writes its own JUnit report of the run.

Nothing raises inside the Hypothesis tests, so nothing shrinks: the cases of a run are fixed by its
seed, and the same seed sends the same cases again (the first failing case included).
"""

from __future__ import annotations

import dataclasses
import io
import json
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, Response
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.engine.statistic import GroupedFailures
from schemathesis.generation import derive_operation_seed
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.generation.overrides import Override
from schemathesis.reporting.junitxml import JunitXmlWriter
from schemathesis.schemas import APIOperation, BaseSchema

from chatconform.budget import Budget
from chatconform.checks.common import short
from chatconform.checks.errors import every_response
from chatconform.client import Client
from chatconform.fuzz import contract
from chatconform.fuzz.streams import (
    SSE_MEDIA_TYPE,
    ContractViolation,
    bind,
    chatconform_event_stream,
    request_json,
    unbind,
)
from chatconform.record import Exchange
from chatconform.spec import SPEC_PATH
from chatconform.target import Limits, Target
from chatconform.verdicts import Finding

#: Fuzzing-phase examples per operation when none is given (the examples and coverage phases
#: always run in full): sized so that the fuzz suite stays well under 20 s against the reference.
DEFAULT_MAX_EXAMPLES = 10
#: Bounds of one fuzzed exchange: an endless stream fails in this time instead of hanging the run.
STREAM_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 2 * 1024 * 1024
#: After this many streams of one operation hit the bounds, its remaining stream cases are skipped.
STREAM_STRIKES = 2
#: Headers Schemathesis adds for its own transport that chatconform's client sets itself.
_TRANSPORT_HEADERS = {
    "user-agent",
    "accept-encoding",
    "connection",
    "content-length",
    "x-schemathesis-testcaseid",  # a random id: it would make reproducers differ between runs
}


def new_seed() -> int:
    return secrets.randbelow(2**31)


@dataclasses.dataclass
class FuzzSettings:
    seed: int
    max_examples: int = DEFAULT_MAX_EXAMPLES

    @property
    def stateful_scenarios(self) -> int:
        return max(4, self.max_examples // 2)

    @property
    def stateful_steps(self) -> int:
        return 10


@dataclasses.dataclass
class OperationStats:
    label: str
    cases: Counter[str] = dataclasses.field(default_factory=Counter)  # "phase/mode" -> cases
    sent: int = 0
    unsendable: int = 0
    skipped_streams: int = 0
    seconds: float = 0.0
    stream_strikes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": sum(self.cases.values()),
            "byPhase": dict(sorted(self.cases.items())),
            "sent": self.sent,
            "unsendable": self.unsendable,
            "skippedStreams": self.skipped_streams,
            "seconds": round(self.seconds, 3),
        }


@dataclasses.dataclass
class _Reported:
    finding: Finding
    count: int = 1


class Unsendable(Exception):
    """A generated request that no HTTP client can put on the wire (e.g. a NUL in a header)."""


def fuzz_target(target: Target) -> Target:
    """The target with the fuzz suite's tighter bounds (never looser than the run's own)."""
    lim = target.limits
    limits = Limits(
        timeout=lim.timeout,
        stream_timeout=min(lim.stream_timeout, STREAM_TIMEOUT_S),
        max_body_bytes=min(lim.max_body_bytes, MAX_BODY_BYTES),
    )
    return dataclasses.replace(target, limits=limits)


def load_schema(
    target: Target, settings: FuzzSettings | None = None, *, with_auth: bool = True
) -> BaseSchema:
    """The spec as a Schemathesis schema configured from the contract for `target`."""
    data = contract.schemathesis_settings(
        agent_id=target.agent_id,
        max_examples=settings.max_examples if settings else None,
        seed=settings.seed if settings else None,
    )
    data["base-url"] = target.base_url
    data["request-timeout"] = target.limits.timeout
    if with_auth and target.api_key:
        data["auth"] = {"openapi": {"bearerAuth": {"bearer": target.api_key}}}
    config = SchemathesisConfig.from_dict(data)
    return schemathesis.openapi.from_path(SPEC_PATH, config=config)


def operation_id(operation: APIOperation) -> str:
    return str(operation.definition.raw.get("operationId", operation.label))


class Fuzzer:
    """One fuzz run against a target: sends cases, checks responses, collects findings."""

    def __init__(
        self, target: Target, settings: FuzzSettings, budget: Budget | None = None
    ) -> None:
        self.target = fuzz_target(target)
        self.settings = settings
        self.schema = load_schema(self.target, settings)
        self.log: list[Exchange] = []
        self.client = Client(self.target, self.log, budget)
        self.stats: dict[str, OperationStats] = {}
        self._reported: dict[tuple[str, ...], _Reported] = {}
        self._junit: dict[str, list[GroupedFailures]] = {}
        self._junit_keys: set[tuple[str, str, str]] = set()
        load_all_checks()
        self.checks = [
            *CHECKS.get_by_names(list(contract.BUILTIN_CHECKS)),
            chatconform_event_stream,
        ]

    def close(self) -> None:
        self.client.close()

    # -- findings ---------------------------------------------------------------------------
    def report(self, finding: Finding, key: tuple[str, ...]) -> None:
        """Keep the first finding of a kind (rule, operation, what broke); count the others."""
        full = (finding.rule, *key)
        if full in self._reported:
            self._reported[full].count += 1
        else:
            self._reported[full] = _Reported(finding)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for rep in self._reported.values():
            f = rep.finding
            if rep.count > 1:
                f.got = f"{f.got} ({rep.count} cases in all)"
            f.got = f"{f.got} [fuzz seed {self.settings.seed}]"
            out.append(f)
        self._reported.clear()
        return out

    # -- sending ----------------------------------------------------------------------------
    def send(self, case: Case, key: str | None = None) -> Exchange:
        """Send `case` through chatconform's client (optionally with another key)."""
        kw = case.as_transport_kwargs(base_url=self.target.base_url)
        url: str = kw["url"]
        if not url.startswith(self.target.base_url):
            raise Unsendable(f"URL outside the target: {url}")
        path = url[len(self.target.base_url) :]
        headers = {
            str(k): str(v) for k, v in kw["headers"].items() if k.lower() not in _TRANSPORT_HEADERS
        }
        if key is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Bearer {key}"
        content: bytes | None = None
        try:
            if "json" in kw:
                content = json.dumps(kw["json"], allow_nan=False).encode("utf-8")
            elif kw.get("data") is not None:
                data = kw["data"]
                content = data if isinstance(data, bytes) else str(data).encode("utf-8")
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise Unsendable(f"body cannot be serialized: {exc}") from None
        params = {str(k): v for k, v in (kw.get("params") or {}).items()}
        try:
            return self.client.request(
                str(kw["method"]), path, content=content, params=params, key=None, headers=headers
            )
        except Exception as exc:  # httpx refuses the request itself: not the target's doing
            if self.log and self.log[-1].status is None and not self.log[-1].error:
                self.log.pop()
            raise Unsendable(f"{type(exc).__name__}: {exc}") from None

    def response_of(self, ex: Exchange) -> Response:
        """The Schemathesis Response for what chatconform's client recorded."""
        assert ex.status is not None
        request = requests.Request(
            method=ex.method, url=ex.url, headers=ex.request_headers, data=ex.request_body
        ).prepare()
        body = ex.body
        cut = False
        if ex.stream is not None:
            body = bytes(ex.stream.wire)
            cut = ex.stream.ended_by not in ("eof", "client-drop")
        elapsed = ((ex.t_end_ns or ex.t_start_ns) - ex.t_start_ns) / 1e9
        return Response(
            status_code=ex.status,
            headers={k: [v] for k, v in ex.headers.items()},
            content=body,
            request=request,
            elapsed=elapsed,
            verify=True,
            stream_cut_short=cut,
        )

    # -- checking ---------------------------------------------------------------------------
    def check(self, case: Case, ex: Exchange, phase: str) -> Response | None:
        """Run every check on one exchange; report what broke. Returns the Schemathesis Response."""
        op = case.operation
        op_id = operation_id(op)
        if ex.status is None:
            streamed = ex.stream is not None
            rule = ("SSE-5" if op_id == "postMessage" else "OAI-4") if streamed else "ERR-4"
            got = f"no complete response: {ex.error}"
            self.report(
                Finding(rule, "a response within the bounds", got, exchange=ex),
                (op.label, "no-response"),
            )
            return None
        response = self.response_of(ex)
        bind(response, ex)
        try:
            for check in self.checks:
                try:
                    case.validate_response(
                        response,
                        checks=[check],
                        headers=dict(ex.request_headers),
                        transport_kwargs={
                            "base_url": self.target.base_url,
                            "timeout": self.target.limits.timeout,
                        },
                    )
                except FailureGroup as group:
                    for failure in group.exceptions:
                        if isinstance(failure, Failure):
                            self.failed(case, ex, response, check.__name__, failure, phase)
        finally:
            unbind(response)
        for f in every_response(ex):
            self.report(f, self.key(op.label, ex.status, "every_response", f.rule))
        return response

    @staticmethod
    def key(label: str, status: int | None, *what: str) -> tuple[str, ...]:
        """One finding per operation and kind; every 5xx of an operation is one kind (ERR-4)."""
        if status is not None and status >= 500:
            return (label, "5xx")
        return (label, *what, str(status))

    def failed(
        self, case: Case, ex: Exchange, response: Response, check: str, failure: Failure, phase: str
    ) -> None:
        op = case.operation
        op_id = operation_id(op)
        label = op.label
        if check == "negative_data_rejection" and contract.tolerated_negative(
            op_id, request_json(ex)
        ):
            return
        if isinstance(failure, ContractViolation):
            for f in failure.findings:
                f.exchange = ex
                self.report(f, (label, check, f.expected[:60]))
        else:
            streamed = ex.media_type == SSE_MEDIA_TYPE or _asked_stream(ex)
            rule = contract.rule_for_failure(
                check,
                method=op.method,
                path_template=op.path,
                operation_id=op_id,
                status=response.status_code,
                message=failure.message,
                streamed=streamed,
            )
            mode = case.meta.generation.mode.value if case.meta is not None else "?"
            expected = f"{check} to pass ({failure.code}: {failure.title})"
            got = (
                f"{phase} {mode} case {case.method} {case.formatted_path}: HTTP "
                f"{response.status_code}; " + short(" ".join(failure.message.split()), 600)
            )
            level = "C" if check in contract.C_LEVEL_CHECKS else None
            finding = Finding(rule, expected, self.target.redact(got), level=level, exchange=ex)
            self.report(finding, self.key(label, response.status_code, check, failure.code))
        key = (label, check, failure.code)
        if key not in self._junit_keys:
            self._junit_keys.add(key)
            group = GroupedFailures(
                case_id=case.id,
                code_sample=ex.curl(self.target),
                failures=[failure],
                response=response,
            )
            self._junit.setdefault(label, []).append(group)

    # -- stateless --------------------------------------------------------------------------
    def make_session(self) -> str | None:
        if not self.target.agent_id:
            return None
        ex = self.client.create_session(self.target.agent_id)
        data = ex.json().get("data") if isinstance(ex.json(), dict) else None
        sid = data.get("id") if isinstance(data, dict) else None
        return sid if isinstance(sid, str) and sid else None

    def run_stateless(self) -> None:
        """Every operation, examples + coverage + fuzzing phases, positive and negative."""
        live, to_end = self.make_session(), self.make_session()
        for result in self.schema.get_all_operations():
            op = result.ok()
            op_id = operation_id(op)
            sid = to_end if op_id == "endSession" else live
            override = Override(
                path_parameters={"sessionId": sid} if sid and "{" in op.path else {}
            )
            self.run_operation(op, override)

    def run_operation(self, op: APIOperation, override: Override) -> None:
        stats = self.stats.setdefault(op.label, OperationStats(op.label))
        started = time.monotonic()

        def one_case(case: Case) -> None:
            phase = case.meta.phase.name.value if case.meta is not None else "?"
            mode = case.meta.generation.mode.value if case.meta is not None else "?"
            stats.cases[f"{phase}/{mode}"] += 1
            body = case.body if isinstance(case.body, dict) else None
            if (
                body is not None
                and body.get("stream") is True
                and stats.stream_strikes >= STREAM_STRIKES
            ):
                stats.skipped_streams += 1
                return
            if contract.substitute_agent(operation_id(op), case.body, self.target.agent_id):
                case.body = case.body  # let Schemathesis see the edit (its metadata follows)
            try:
                ex = self.send(case)
            except Unsendable:
                stats.unsendable += 1
                return
            stats.sent += 1
            if ex.stream is not None and ex.stream.ended_by in ("timeout", "byte-cap"):
                stats.stream_strikes += 1
            self.check(case, ex, phase)

        project = self.schema.config
        modes = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE]
        modes.append(HypothesisTestMode.FUZZING)
        settings = hypothesis.settings(
            max_examples=self.settings.max_examples,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        test = create_test(
            operation=op,
            test_func=one_case,
            config=HypothesisTestConfig(
                project=project,
                modes=modes,
                settings=settings,
                seed=derive_operation_seed(self.settings.seed, op.label),
                override=override,
            ),
        )
        test()
        stats.seconds += time.monotonic() - started

    # -- reports ----------------------------------------------------------------------------
    def write_junit(self, path: Path) -> None:
        """Schemathesis's own JUnit report of this run (keys redacted)."""
        buf = io.StringIO()
        writer = JunitXmlWriter(buf)
        config = self.schema.config.output
        for label, stats in self.stats.items():
            writer.record_scenario(
                label=label,
                elapsed_sec=stats.seconds,
                failures=self._junit.get(label, []),
                skip_reason=None,
                config=config,
            )
        writer.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.target.redact(buf.getvalue()), encoding="utf-8")

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.settings.seed,
            "maxExamples": self.settings.max_examples,
            "operations": {label: s.to_json() for label, s in self.stats.items()},
        }


def _asked_stream(ex: Exchange) -> bool:
    body = request_json(ex)
    return isinstance(body, dict) and body.get("stream") is True
