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
  response validated with `case.validate_response(...)` against the built-in checks, and by
  chatconform's own stream checks (`streams.stream_findings`, on the whole parsed stream);
  `PROBE_BODIES` add what no generator sends (invalid JSON, no body);
- stateful: `schema.as_state_machine()` (the spec's links), with `step` sending through the same
  client and adding the model checks (a created session is gettable, history grows by what each
  post returned, an ended session refuses posts) and the tenancy replays;
- the contract's rejection list (the spec's `x-must-reject`, `rejection.py`) judges what must be
  refused, on the request as it was sent: a listed violation that gets a 2xx breaks its rule; a
  request that breaks the schema only where the contract allows leniency is a note (level I);
- every failure becomes a `Finding` for the rule it breaks (`contract.rule_for_failure`), and
  Schemathesis's `JunitXmlWriter` writes its own JUnit report of the run;
- evidence comes only from what was sent: each check says which rule (clause) it examined on each
  response (`Outcome.saw`), so a run that sent nothing passes nothing.

Nothing raises inside the Hypothesis tests, so nothing shrinks: the cases of a run are fixed by its
seed (fixed by default, `seed.py`), and the same seed sends the same cases again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import queue
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, Response
from schemathesis.checks import CHECKS, CheckFunction, load_all_checks
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

from chatconform import interrupt
from chatconform.agentcalls import invokes_agent
from chatconform.budget import Budget
from chatconform.checks.common import short
from chatconform.checks.errors import every_response
from chatconform.client import Client
from chatconform.fuzz import contract, rejection
from chatconform.fuzz.determinism import seed_only
from chatconform.fuzz.seed import new_seed
from chatconform.fuzz.streams import (
    SSE_MEDIA_TYPE,
    ContractViolation,
    request_json,
    stream_findings,
)
from chatconform.fuzz.window import Window
from chatconform.record import Exchange
from chatconform.spec import SPEC_PATH
from chatconform.target import Limits, Target
from chatconform.verdicts import Finding, Outcome

#: Fuzzing-phase examples per operation when none is given (the examples and coverage phases
#: always run in full): sized so that the fuzz suite stays well under 20 s against the reference.
DEFAULT_MAX_EXAMPLES = 10
#: Bounds of one fuzzed exchange: an endless stream fails in this time instead of hanging the run.
STREAM_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 2 * 1024 * 1024
#: After this many streams of one operation hit the bounds, its remaining stream cases are skipped.
STREAM_STRIKES = 2
#: Under a cap on agent calls, the stateless run leaves a third of what is left (at most this many)
#: to the stateful runs after it, which share it half and half (`stateless_share`, `stateful_share`).
STATEFUL_RESERVE = 2
#: Headers Schemathesis adds for its own transport that chatconform's client sets itself.
_TRANSPORT_HEADERS = {
    "user-agent",
    "accept-encoding",
    "connection",
    "content-length",
    "x-schemathesis-testcaseid",  # a random id: it would make reproducers differ between runs
}


#: Refusals that say the request was validated (400; 413, 415 and 422 for a body the server did
#: read); 401, 403, 404, 405, 409 and 429 come before validation and say nothing of the rejection list.
JUDGES_VALIDATION = frozenset({400, 413, 415, 422})
#: Bodies no generator produces, sent to every operation whose rejection list covers them
#: (`unparsable: true`): invalid JSON, a bare line end, and no body at all (ERR-2).
PROBE_BODIES: tuple[bytes | None, ...] = (b"{oops", b"\n", None)

#: A post to a session: concurrent ones on one session would get 409 session_busy (MSG-6).
_SESSION_POST = re.compile(r"^/chat/sessions/([^/?]+)/messages$")
#: How long a case waits for a session of its own to be free (posts in flight are bounded anyway).
SESSION_WAIT_S = 120.0

#: One request as the fuzzer sends it: method, path (below the base URL), body, query, headers.
_Request = tuple[str, str, bytes | None, dict[str, Any] | None, dict[str, str]]

__all__ = ["DEFAULT_MAX_EXAMPLES", "FuzzSettings", "Fuzzer", "OperationStats", "new_seed"]


@dataclasses.dataclass
class FuzzSettings:
    seed: int
    max_examples: int = DEFAULT_MAX_EXAMPLES
    concurrency: int = 1  # cases in flight at once (the run's --concurrency)

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
    not_sent: int = 0  # refused by the run's budget (deadline, breaker): ERROR if nothing judged
    capped: int = 0  # refused by a limit the user chose (--max-agent-calls): SKIP naming it
    skipped_streams: int = 0
    truncated_streams: int = 0  # longer than the raw bytes kept: schema not checked by Schemathesis
    must_reject: int = 0  # sent cases that broke the contract's rejection list
    lenient: int = 0  # invalid cases accepted where the contract allows it (notes)
    seconds: float = 0.0
    stream_strikes: int = 0
    # what was sent, in order, with the ids the target issued replaced (same seed, same digest)
    digest: Any = dataclasses.field(default_factory=hashlib.sha256)
    names: dict[str, str] = dataclasses.field(default_factory=dict)  # issued id -> its name here

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": sum(self.cases.values()),
            "byPhase": dict(sorted(self.cases.items())),
            "sent": self.sent,
            "unsendable": self.unsendable,
            "notSent": self.not_sent,
            "capped": self.capped,
            "skippedStreams": self.skipped_streams,
            "truncatedStreams": self.truncated_streams,
            "mustReject": self.must_reject,
            "leniencyNotes": self.lenient,
            "sentDigest": self.digest.hexdigest()[:16],
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
    schema = schemathesis.openapi.from_path(SPEC_PATH, config=config)
    _memoize_config(schema.config)
    return schema


def _memoize_config(project: Any) -> None:
    """Schemathesis merges its configuration hierarchy anew on each call for a case (one
    `checks_config_for` per validated response: a tenth of a fuzz run's CPU); the configuration
    never changes during a run, so each (operation, phase) is merged once."""
    for name in ("checks_config_for", "phases_for", "generation_for"):
        merge = getattr(project, name)
        cache: dict[tuple[str | None, str | None], Any] = {}

        def cached(
            *, operation: Any = None, phase: Any = None, _merge: Any = merge, _cache: Any = cache
        ) -> Any:
            key = (None if operation is None else operation.label, phase)
            if key not in _cache:
                kw = (
                    {"operation": operation}
                    if phase is None
                    else {"operation": operation, "phase": phase}
                )
                _cache[key] = _merge(**kw)
            return _cache[key]

        setattr(project, name, cached)


def operation_id(operation: APIOperation) -> str:
    return str(operation.definition.raw.get("operationId", operation.label))


class Fuzzer:
    """One fuzz run against a target: sends cases, checks responses, collects findings and evidence."""

    def __init__(
        self, target: Target, settings: FuzzSettings, budget: Budget | None = None
    ) -> None:
        self.target = fuzz_target(target)
        self.settings = settings
        self.schema = load_schema(self.target, settings)
        self.log: list[Exchange] = []
        self.client = Client(self.target, self.log, budget)
        self.ledger = budget.agent_calls if budget is not None else None
        self.window = Window(settings.concurrency, self.ledger)
        # posts sent at once each go to a session of their own: the session the case names, or
        # one standing in for it (stand-in -> that session; the digests name it as the original)
        self._stand_ins: dict[str, str] = {}
        self._free: dict[str, queue.SimpleQueue[str]] = {}
        self.stats: dict[str, OperationStats] = {}
        self.issued: rejection.Issued = {}  # values the target issued (e.g. page cursors)
        self.aliases: dict[str, str] = {}  # ids the target issued -> stable names (digests)
        if self.target.agent_id:
            self.aliases[self.target.agent_id] = "{agent}"
        self.stopped: str | None = None  # why the run's budget stopped sending, if it did
        self.capped: str | None = None  # the limit the user chose that refused a request
        self._reported: dict[tuple[str, ...], _Reported] = {}
        self._evidence = Outcome()  # what the checks examined since the last findings()
        self._junit: dict[str, list[GroupedFailures]] = {}
        self._junit_keys: set[tuple[str, str, str]] = set()
        self._auth_probed: set[str] = set()  # operations whose auth ignored_auth confirmed
        load_all_checks()
        self.checks = CHECKS.get_by_names(list(contract.BUILTIN_CHECKS))

    def close(self) -> None:
        self.window.close()
        self.client.close()

    # -- findings and evidence ----------------------------------------------------------------
    def report(self, finding: Finding, key: tuple[str, ...]) -> None:
        """Keep the first finding of a kind (rule, operation, what broke); count the others."""
        full = (finding.rule, *key)
        if full in self._reported:
            self._reported[full].count += 1
        else:
            self._reported[full] = _Reported(finding)

    def take(self, outcome: Outcome, key: tuple[str, ...]) -> None:
        """Record a check's outcome: its evidence, and each finding under `key` + its text."""
        self._evidence.examined.update(outcome.examined)
        for k, why in outcome.unexercised.items():
            self._evidence.unexercised.setdefault(k, why)
        for f in outcome:
            self.report(f, (*key, f.expected[:60]))

    def saw(self, rule: str, clause: str | None = None, n: int = 1) -> None:
        self._evidence.saw(rule, clause, n)

    def findings(self, aims: Iterable[str] = ()) -> Outcome:
        """The findings and evidence since the last call.

        When the run's budget stopped the sending, every rule in `aims` that nothing examined is an
        ERROR (kind "budget"): the run could not judge it, the target did not fail it.
        """
        out = Outcome()
        out.extend(self._evidence)
        for rep in self._reported.values():
            f = rep.finding
            if rep.count > 1:
                f.got = f"{f.got} ({rep.count} cases in all)"
            f.got = f"{f.got} [fuzz seed {self.settings.seed}]"
            out.append(f)
        if self.stopped:
            examined = out.rules_examined() | {f.rule for f in out}
            for rule in dict.fromkeys(aims):
                if rule not in examined:
                    got = f"the fuzz run stopped sending: {self.stopped}"
                    out.append(
                        Finding(rule, "the fuzz suite to send its cases", got, kind="budget")
                    )
        self._reported.clear()
        self._evidence = Outcome()
        return out

    def sent_cases(self) -> int:
        return sum(s.sent for s in self.stats.values())

    # -- sending ----------------------------------------------------------------------------
    def send(self, case: Case, key: str | None = None) -> Exchange:
        """Send `case` through chatconform's client (optionally with another key), now."""
        request = self.prepare(case, key)
        return self.held_back(request) or self._request(*request)

    def prepare(self, case: Case, key: str | None = None) -> _Request:
        """The request `case` stands for: method, path, body, query, headers (Unsendable when
        it cannot be put on the wire)."""
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
        return str(kw["method"]), path, content, params, headers

    def held_back(self, request: _Request) -> Exchange | None:
        """A request that may invoke the agent, kept back because no agent call is left for this
        phase (the cap, or its share of it): recorded as not sent for that limit. None: send it."""
        method, path, content, _, headers = request
        url = self.target.url(path)
        if not invokes_agent(method, url) or self.window.room():
            return None
        assert self.ledger is not None
        ex = Exchange(method, url, headers, content)
        ex.error = self.ledger.refuse()
        ex.not_sent = True
        ex.limit = self.ledger.limit_text
        ex.t_end_ns = ex.t_start_ns
        self.log.append(ex)
        self.capped = ex.limit
        return ex

    def submit(
        self, request: _Request, finish: Callable[[Exchange | None], None]
    ) -> Exchange | None:
        """Send `request` in the window (concurrently when it has workers); `finish` gets its
        exchange (None: unsendable) in the order of submission. Returns the exchange when it was
        held back instead (not sent, nothing to finish)."""
        held = self.held_back(request)
        if held is not None:
            return held
        method, path, content, params, headers = request
        url = self.target.url(path)
        agent = self.window.concurrent and invokes_agent(method, url)
        release: Callable[[], None] = lambda: None  # noqa: E731
        if agent:
            try:  # what httpx would refuse, refused here (a worker thread must not pop the log)
                httpx.Request(method, url, params=params, content=content, headers=headers)
            except Exception:
                finish(None)
                return None
            request, release = self._own_session(request)

        def attempt() -> Exchange | None:
            try:
                return self._request(*request)
            except Unsendable:
                return None
            finally:
                release()

        self.window.submit(attempt, finish, agent)
        return None

    def _own_session(self, request: _Request) -> tuple[_Request, Callable[[], None]]:
        """A post sent while others are in flight goes to a session no other post in flight
        uses: the one it names, or one standing in for it (made once, one per worker); the
        returned callable frees it again."""
        method, path, content, params, headers = request
        match = _SESSION_POST.match(path)
        if match is None:
            return request, lambda: None
        sid = unquote(match.group(1))
        free = self._free.get(sid)
        if free is None:
            free = self._free[sid] = queue.SimpleQueue()
            free.put(sid)
            for _ in range(self.window.workers - 1):
                other = self.make_session()
                if other is not None:
                    self._stand_ins[other] = sid
                    free.put(other)
        try:
            mine = free.get(timeout=SESSION_WAIT_S)
        except queue.Empty:  # not expected: as many sessions as cases in flight
            mine = sid
        path = path.replace(match.group(1), quote(mine, ""), 1)
        return (method, path, content, params, headers), lambda: free.put(mine)

    def _request(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> Exchange:
        try:
            ex = self.client.request(
                method, path, content=content, params=params, key=None, headers=headers
            )
        except Exception as exc:  # httpx refuses the request itself: not the target's doing
            alone = not self.window.concurrent  # else the last one may be another's in flight
            if alone and self.log and self.log[-1].status is None and not self.log[-1].error:
                self.log.pop()
            raise Unsendable(f"{type(exc).__name__}: {exc}") from None
        if ex.not_sent and ex.limit:
            self.capped = (
                ex.limit
            )  # a limit the user chose: only agent-invoking requests wait on it
        elif ex.not_sent:
            self.stopped = self.stopped or ex.error or "not sent"  # the deadline or the breaker
        return ex

    @staticmethod
    def unsent(stats: OperationStats, ex: Exchange) -> bool:
        """Count a request the run did not send (True), by why: a cap the user chose, or the budget."""
        if not ex.not_sent:
            return False
        if ex.limit:
            stats.capped += 1
        else:
            stats.not_sent += 1
        return True

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
    def alias(self, session_id: Any) -> None:
        """Remember a session id the target issued, so that digests do not depend on it."""
        if isinstance(session_id, str) and session_id and session_id not in self.aliases:
            self.aliases[session_id] = "{session}"

    def record_sent(self, stats: OperationStats, ex: Exchange) -> None:
        """Add what was sent to the operation's digest. The ids the target issued are named by
        their first use in this operation's own cases, so the digest is the same whichever
        process ran the operation and whatever else it ran before."""
        body = (ex.request_body or b"").decode("utf-8", "replace")
        line = f"{ex.method} {ex.url.removeprefix(self.target.base_url)} {body}"
        for stand_in, original in self._stand_ins.items():  # named as the session it stood for
            line = line.replace(stand_in, original)
        found = sorted((line.find(real), real) for real in self.aliases if real in line)
        for _, real in found:
            name = self.aliases[real]
            if name == "{session}":
                name = stats.names.setdefault(real, f"{{session-{len(stats.names)}}}")
            line = line.replace(real, name)
        stats.digest.update(line.encode("utf-8", "surrogatepass") + b"\n")

    def check(
        self,
        case: Case,
        ex: Exchange,
        phase: str,
        *,
        replay: bool = False,
        stats: OperationStats | None = None,
    ) -> Response | None:
        """Run every check on one exchange; report what broke and record what was examined.

        `replay`: the request was re-sent with another organization's key (tenancy), so it says
        nothing about the rejection list or unknown sessions. `stats`: where to count it (the
        operation's own by default). Returns the Schemathesis Response.
        """
        op = case.operation
        op_id = operation_id(op)
        label = op.label
        if stats is None:
            stats = self.stats.setdefault(label, OperationStats(label))
        if not ex.not_sent:
            self.record_sent(stats, ex)
        if op_id == "createSession" and ex.status is not None and 200 <= ex.status < 300:
            body = ex.json()
            data = body.get("data") if isinstance(body, dict) else None
            self.alias(data.get("id") if isinstance(data, dict) else None)
        if ex.status is None:
            if ex.not_sent:
                return None  # the budget's doing: findings() reports the rules left unjudged
            streamed = ex.stream is not None
            rule = ("SSE-5" if op_id == "postMessage" else "OAI-4") if streamed else "ERR-4"
            got = f"no complete response: {ex.error}"
            self.saw(rule)
            self.report(
                Finding(rule, "a response within the bounds", got, exchange=ex),
                (label, "no-response"),
            )
            return None
        every = every_response(ex)
        for f in every:
            self.report(f, self.key(label, ex.status, "every_response", f.rule))
        self.take(_evidence_only(every), ())
        response = self.response_of(ex)
        streamed = stream_findings(ex, op_id)  # chatconform's own parse of the whole stream
        self.take(streamed, (label, "stream"))
        if any(not f.is_note for f in streamed):
            violation = ContractViolation(operation=label, findings=list(streamed))
            self.junit(case, ex, response, "chatconform_event_stream", violation)
        if not replay and ex.method.upper() == op.method.upper():
            self.take(self.rejections(op_id, ex, stats), (label, "must-reject"))
        self.take(self.examined(case, op_id, ex, replay), ())
        rejection.harvest(op_id, ex, self.issued)
        truncated = ex.stream is not None and ex.stream.parser.bytes_seen > len(ex.stream.wire)
        if truncated:
            stats.truncated_streams += 1
            self.report(_truncated_note(op_id, ex), (label, "truncated-stream"))
        pure: list[CheckFunction] = []
        alone: list[CheckFunction] = []  # checks that send requests of their own: run once each
        for check in self.checks:
            name = check.__name__
            if truncated and name == "response_schema_conformance":
                continue  # the raw bytes kept are a prefix: never judge a prefix as whole
            if name == "ignored_auth":
                if self._probe_auth(label, ex):
                    alone.append(check)
                continue
            pure.append(check)
        # Schemathesis merges its configuration anew on every validate_response call (most of
        # the fuzz suite's CPU when called per check): the side-effect-free checks go in one call,
        # and only when that call fails are they run one by one, to name the check of each failure
        if pure and self._validate(case, ex, response, pure):
            alone = pure + alone
        for check in alone:
            for failure in self._validate(case, ex, response, [check]):
                self.failed(case, ex, response, check.__name__, failure, phase, stats)
        return response

    def _validate(
        self,
        case: Case,
        ex: Exchange,
        response: Response,
        checks: list[CheckFunction],
    ) -> list[Failure]:
        """The failures of `checks` on one response (Schemathesis's validate_response)."""
        try:
            case.validate_response(
                response,
                checks=checks,
                headers=dict(ex.request_headers),
                transport_kwargs={
                    "base_url": self.target.base_url,
                    "timeout": self.target.limits.timeout,
                },
            )
        except FailureGroup as group:
            return [f for f in group.exceptions if isinstance(f, Failure)]
        return []

    def _probe_auth(self, label: str, ex: Exchange) -> bool:
        """ignored_auth re-sends a 2xx request without its key and with a wrong one (AUTH-1):
        once per operation is enough, as Schemathesis's own runner does."""
        if label in self._auth_probed or ex.status is None or not 200 <= ex.status < 300:
            return False
        if not any(k.lower() == "authorization" for k in ex.request_headers):
            return False
        self._auth_probed.add(label)
        self.saw("AUTH-1")
        return True

    def rejections(self, op_id: str, ex: Exchange, stats: OperationStats) -> Outcome:
        """The contract's rejection list on the request as sent: a listed violation must not be
        accepted (2xx). Each listed violation sent is one observation of its rule('s clause)."""
        out = Outcome()
        broken = rejection.broken(op_id, ex, self.issued)
        if broken:
            stats.must_reject += 1
        assert ex.status is not None
        for c in broken:
            if ex.status not in JUDGES_VALIDATION and not 200 <= ex.status < 300:
                continue  # refused before validation (no key, no such session, busy, ...)
            out.saw(c.rule, c.clause)
            if 200 <= ex.status < 300:
                expected = f"a request that must be rejected to be refused: {c.when}"
                got = f"HTTP {ex.status} for {ex.method} {ex.url}; body {_body_excerpt(ex)}"
                out.append(
                    Finding(
                        c.rule, expected, self.target.redact(got), level=c.level, exchange=ex,
                        clause=c.clause,
                    )
                )  # fmt: skip
        return out

    def examined(self, case: Case, op_id: str, ex: Exchange, replay: bool) -> Outcome:
        """What the Schemathesis checks examine on this response, by rule (their evidence).

        The findings come from the checks themselves (`failed`); this says only what was looked at:
        a valid request accepted (the operation's rule), a 2xx JSON body against its schema, an
        unknown session's 404, a request sent without a key (AUTH-1).
        """
        out = Outcome()
        status = ex.status
        assert status is not None
        ok = 200 <= status < 300
        if ok and _is_positive(case) and not replay:
            out.saw(contract.OPERATION_RULE[op_id])
        if ok and ex.stream is None and ex.media_type != SSE_MEDIA_TYPE:
            for rule in contract.SCHEMA_RULES.get(op_id, ()):
                out.saw(rule)
            if op_id in ("listMessages", "postMessage") and _has_messages(ex):
                out.saw("MSG-3")
        if status == 404 and not replay and op_id in contract.SESSION_OPERATIONS:
            out.saw("SES-7")
        if not any(k.lower() == "authorization" for k in ex.request_headers):
            out.saw("AUTH-1")
            if ok:
                out.append(
                    Finding("AUTH-1", "a request without a key refused with 401",
                            f"HTTP {status} for {ex.method} {ex.url}", exchange=ex)
                )  # fmt: skip
        return out

    @staticmethod
    def key(label: str, status: int | None, *what: str) -> tuple[str, ...]:
        """One finding per operation and kind; every 5xx of an operation is one kind (ERR-4)."""
        if status is not None and status >= 500:
            return (label, "5xx")
        return (label, *what, str(status))

    def failed(
        self,
        case: Case,
        ex: Exchange,
        response: Response,
        check: str,
        failure: Failure,
        phase: str,
        stats: OperationStats,
    ) -> None:
        op = case.operation
        op_id = operation_id(op)
        label = op.label
        accepted = 200 <= response.status_code < 300
        if check == "negative_data_rejection" and accepted:
            # the rejection list judged this request (rejections()); only leniency is left here
            if rejection.broken(op_id, ex, self.issued) or rejection.may_ignore_body(op_id):
                return
            stats.lenient += 1
            self.report(self.leniency_note(case, ex, failure, phase), (label, "lenient"))
            return
        streamed = ex.media_type == SSE_MEDIA_TYPE or _asked_stream(ex)
        rule, clause = contract.rule_for_failure(
            check,
            method=op.method,
            path_template=op.path,
            operation_id=op_id,
            status=response.status_code,
            message=failure.message,
            streamed=streamed,
            instance=getattr(failure, "instance", None),
        )
        mode = case.meta.generation.mode.value if case.meta is not None else "?"
        expected = f"{check} to pass ({failure.code}: {failure.title})"
        got = (
            f"{phase} {mode} case {case.method} {case.formatted_path}: HTTP "
            f"{response.status_code}; " + short(" ".join(failure.message.split()), 600)
        )
        level = "C" if check in contract.C_LEVEL_CHECKS else None
        finding = Finding(
            rule, expected, self.target.redact(got), level=level, exchange=ex, clause=clause
        )
        self.report(finding, self.key(label, response.status_code, check, failure.code))
        self.junit(case, ex, response, check, failure)

    def leniency_note(self, case: Case, ex: Exchange, failure: Failure, phase: str) -> Finding:
        """An invalid request accepted where the contract allows it: a note (I), one example."""
        op_id = operation_id(case.operation)
        rule = "OAI-2" if op_id == "createChatCompletion" else "ERR-2"
        what = contract.request_schema_error(op_id, request_json(ex)) or short(
            " ".join(failure.message.split()), 300
        )
        got = (
            f"HTTP {ex.status} for a {phase} case that breaks the spec's request schema only where "
            f"the contract does not require a rejection: {case.method} {case.formatted_path}, "
            f"body {_body_excerpt(ex)}; {what}"
        )
        expected = "nothing (accepting it is allowed); noted for the implementer"
        return Finding(rule, expected, self.target.redact(got), level="I", exchange=ex)

    def junit(
        self, case: Case, ex: Exchange, response: Response, check: str, failure: Failure
    ) -> None:
        label = case.operation.label
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
        if ex.not_sent and not ex.limit:
            self.stopped = self.stopped or ex.error or "not sent"
        data = ex.json().get("data") if isinstance(ex.json(), dict) else None
        sid = data.get("id") if isinstance(data, dict) else None
        self.alias(sid)
        return sid if isinstance(sid, str) and sid else None

    def run_stateless(self) -> None:
        """Every operation, examples + coverage + fuzzing phases, positive and negative, then
        the probes of the rejection list that no generator produces (invalid JSON, no body).
        Under a cap on agent calls it spends `stateless_share` of what is left."""
        self.window.plan(stateless_share)
        live, to_end = self.make_session(), self.make_session()
        for result in self.schema.get_all_operations():
            op = result.ok()
            op_id = operation_id(op)
            sid = to_end if op_id == "endSession" else live
            path_parameters = {"sessionId": sid} if sid and "{" in op.path else {}
            self.run_operation(op, Override(path_parameters=path_parameters))
            self.run_probes(op, path_parameters)

    def run_probes(self, op: APIOperation, path_parameters: dict[str, str]) -> None:
        """Bodies that are not JSON at all, for the operations that must reject them (ERR-2)."""
        if not any(c.unparsable for c in rejection.constraints(operation_id(op))):
            return
        if "{" in op.path and not path_parameters:
            return  # no session of the target to aim at
        stats = self.stats.setdefault(op.label, OperationStats(op.label))
        started = time.monotonic()
        for body in PROBE_BODIES:
            if self.stopped:
                stats.not_sent += 1
                continue
            case = op.Case(path_parameters=dict(path_parameters), media_type="application/json")
            path = op.path.replace("{sessionId}", quote(path_parameters.get("sessionId", ""), ""))
            headers = {"Authorization": f"Bearer {self.target.api_key}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            stats.cases["probe/negative"] += 1
            request = (op.method.upper(), path, body, None, headers)
            held = self.submit(request, self.finisher(case, stats, "probe"))
            if held is not None:
                self.unsent(stats, held)
        self.window.drain()
        stats.seconds += time.monotonic() - started

    def finisher(
        self, case: Case, stats: OperationStats, phase: str
    ) -> Callable[[Exchange | None], None]:
        """What to do with a case's exchange once it is back (in the order the cases were made)."""

        def finish(ex: Exchange | None) -> None:
            if ex is None:
                stats.unsendable += 1
                return
            if self.unsent(stats, ex):
                return
            stats.sent += 1
            if ex.stream is not None and ex.stream.ended_by in ("timeout", "byte-cap"):
                stats.stream_strikes += 1
            self.check(case, ex, phase)

        return finish

    def run_operation(self, op: APIOperation, override: Override) -> None:
        stats = self.stats.setdefault(op.label, OperationStats(op.label))
        started = time.monotonic()

        def one_case(case: Case) -> None:
            phase = case.meta.phase.name.value if case.meta is not None else "?"
            mode = case.meta.generation.mode.value if case.meta is not None else "?"
            stats.cases[f"{phase}/{mode}"] += 1
            if self.stopped:
                stats.not_sent += 1
                return
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
            interrupt.check()  # Hypothesis reports what an example raised: Ctrl-C is raised again
            try:
                request = self.prepare(case)
            except Unsendable:
                stats.unsendable += 1
                return
            held = self.submit(request, self.finisher(case, stats, phase))
            if held is not None:
                self.unsent(stats, held)

        project = self.schema.config
        modes = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE]
        modes.append(HypothesisTestMode.FUZZING)
        settings = hypothesis.settings(
            max_examples=self.settings.max_examples,
            deadline=None,
            database=None,
            derandomize=False,  # the seed below fixes the cases; derandomize would ignore it
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
        with seed_only():
            test()
        self.window.drain()
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


def stateless_share(left: int) -> int:
    """The agent calls the stateless run may spend of those `left`: all but a reserve for the
    stateful runs (a third, at most STATEFUL_RESERVE), so that they too send some posts."""
    return left - min(left // 3, STATEFUL_RESERVE)


def stateful_share(left: int) -> int:
    """The first stateful run's part of what the stateless run left: half (the tenancy replays
    after it spend the rest)."""
    return (left + 1) // 2


def _asked_stream(ex: Exchange) -> bool:
    body = request_json(ex)
    return isinstance(body, dict) and body.get("stream") is True


def _is_positive(case: Case) -> bool:
    """A case generated as valid (probes and hand-made cases have no metadata: not positive)."""
    return case.meta is not None and case.meta.generation.mode.value == "positive"


def _has_messages(ex: Exchange) -> bool:
    body = ex.json()
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        data = data.get("messages")
    return isinstance(data, list) and any(isinstance(m, dict) for m in data)


def _evidence_only(outcome: Outcome) -> Outcome:
    """The evidence of `outcome` without its findings (reported separately)."""
    out = Outcome()
    out.examined.update(outcome.examined)
    out.unexercised.update(outcome.unexercised)
    return out


def _body_excerpt(ex: Exchange) -> str:
    if ex.request_body is None:
        return "(none)"
    return short(ex.request_body.decode("utf-8", "replace"), 160)


def _truncated_note(op_id: str, ex: Exchange) -> Finding:
    """A stream longer than the raw bytes kept: its item schemas were not checked as a whole."""
    assert ex.stream is not None
    rule = "OAI-4" if op_id == "createChatCompletion" else "SSE-3"
    got = (
        f"a stream of {ex.stream.parser.bytes_seen} bytes: chatconform keeps its first "
        f"{len(ex.stream.wire)} raw bytes, so Schemathesis's per-event schema check was skipped on "
        "it; chatconform's own stream checks judged every event"
    )
    return Finding(rule, "every event checked against the spec", got, level="I", exchange=ex)
