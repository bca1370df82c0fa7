"""Stateful fuzzing through the spec's links, with a model of the sessions it created.

`schema.as_state_machine()` builds a Hypothesis state machine from the links (create session ->
get / list / post / end; post -> get / list). `step` is overridden to send through chatconform's
bounded client, run the stateless checks on every response, and add:

- SES-4: a session just created is gettable at once, with the same fields;
- MSG-5: listing a session's messages gives exactly what its posts returned, in order (plain
  and streamed posts; a streamed post's messages are those of its `done` frame);
- SES-6: a session the sequence ended refuses posts with 409 `session_ended`;
- AUTH-4 (SES-3 for creation): every request on a session of ours is replayed with the other
  organization's key, and never succeeds (404 expected).

Each check records what it examined (the fuzzer's evidence): AUTH-4's get / list / post / end
clauses only for the replays actually sent and answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import Case
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from chatconform.checks.common import data_of, expect_problem_code, finding, short
from chatconform.checks.sessions import same_session
from chatconform.checks.streaming import frames
from chatconform.fuzz import contract
from chatconform.fuzz.determinism import seed_only
from chatconform.fuzz.runner import (
    Fuzzer,
    OperationStats,
    Unsendable,
    operation_id,
    stateful_share,
)
from chatconform.fuzz.streams import request_json, session_id_of
from chatconform.record import Exchange
from chatconform.verdicts import Finding, Outcome

LABEL = "Stateful tests"
#: operationId -> AUTH-4's clause for a replay of it with the other organization's key.
TENANCY_CLAUSES: dict[str, str] = {
    "getSession": "get",
    "listMessages": "list",
    "postMessage": "post",
    "endSession": "end",
}


@dataclass
class SessionModel:
    session: dict[str, Any]
    ended: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    # the history can no longer be predicted (a post whose outcome is unknown)
    unknown: bool = False


class _Halt(Exception):
    """The sequence stops sending (no response, or the run's budget): end the stateful run."""


def returned_messages(ex: Exchange) -> list[dict[str, Any]] | None:
    """The messages one post returned: `data.messages`, or the `done` frame's `messages`."""
    if ex.stream is not None:
        done = [d for e, d in frames(ex) if e.type == "done"]
        data = done[0] if done else None
    else:
        data = data_of(ex)
    messages = data.get("messages") if isinstance(data, dict) else None
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return messages
    return None


def _brief(messages: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(m.get("id"), m.get("role"), m.get("content")) for m in messages]


def _is_positive(case: Case) -> bool:
    return case.meta is None or case.meta.generation.mode.value == "positive"


class Stateful:
    """Runs the link-driven state machine for one Fuzzer."""

    def __init__(self, fuzzer: Fuzzer, tenancy: bool = False, label: str = LABEL) -> None:
        self.fuzzer = fuzzer
        self.model: dict[str, SessionModel] = {}
        self.label = label
        self.stats = fuzzer.stats.setdefault(label, OperationStats(label))
        self.other_key = fuzzer.target.other_tenant_key if tenancy else None
        self.halted: str | None = None  # why the sequence stopped sending
        self.silent: str | None = None  # ... when it was a step without a response

    def report(self, f: Finding, *what: str) -> None:
        self.fuzzer.report(f, (self.label, *what))

    def take(self, outcome: Outcome, what: str) -> None:
        """A check's outcome: its evidence, and its findings reported under `what`."""
        self.fuzzer.take(outcome, (self.label, what))

    # -- one step ---------------------------------------------------------------------------
    def step(self, case: Case) -> StepOutput:
        fz = self.fuzzer
        op_id = operation_id(case.operation)
        self.stats.cases[f"stateful/{op_id}"] += 1
        if fz.stopped or self.halted:  # nothing more is sent (Hypothesis's replay of the last
            raise _Halt(self.halted or fz.stopped)  # sequence, which it makes to report it)
        if contract.substitute_agent(op_id, case.body, fz.target.agent_id):
            case.body = case.body
        try:
            ex = fz.send(case)
        except Unsendable:
            self.stats.unsendable += 1
            raise hypothesis.reject() from None
        if fz.unsent(self.stats, ex):
            # the budget's doing (the fuzzer says which rules went unjudged), or the agent-call
            # cap's (the plugin says SKIP naming it): this sequence cannot be played further
            self.halted = ex.error or "not sent"
            raise _Halt(self.halted)
        self.stats.sent += 1
        response = fz.check(case, ex, "stateful", stats=self.stats)
        if response is None:  # check() reported it against the step's rule
            self.halted = self.silent = ex.error or "no response"
            raise _Halt(self.halted)
        self.model_checks(case, op_id, ex)
        if self.other_key:
            self.tenancy(case, op_id, ex)
        return StepOutput(response, case)

    def model_checks(self, case: Case, op_id: str, ex: Exchange) -> None:
        fz = self.fuzzer
        if op_id == "createSession":
            data = data_of(ex)
            if ex.status == 201 and isinstance(data, dict) and isinstance(data.get("id"), str):
                sid = data["id"]
                self.model[sid] = SessionModel(data)
                got = fz.client.get_session(sid)
                if got.not_sent:
                    return
                checked = same_session(got, data, "SES-4")
                for f in checked:
                    f.expected = f"the session just created to be gettable: {f.expected}"
                self.take(checked, "gettable")
            return
        sid = session_id_of(ex.url) if op_id != "getSession" else ex.url.rsplit("/", 1)[-1]
        sid = sid.split("?", 1)[0]
        model = self.model.get(sid)
        if model is None:
            return
        if op_id == "postMessage":
            self.after_post(case, ex, model)
        elif op_id == "endSession" and ex.status == 200:
            model.ended = True
        elif op_id == "listMessages" and ex.status == 200 and not model.unknown:
            self.after_list(ex, model)
        elif op_id == "getSession" and ex.status == 200:
            data = data_of(ex)
            status = data.get("status") if isinstance(data, dict) else None
            want = "ended" if model.ended else "active"
            rule = "SES-5" if model.ended else "SES-4"
            fz.saw(rule)
            if status != want:
                self.report(finding(rule, f'status "{want}"', f"status {status!r}", ex), "status")

    def after_post(self, case: Case, ex: Exchange, model: SessionModel) -> None:
        succeeded = ex.status is not None and 200 <= ex.status < 300
        if model.ended and (succeeded or _is_positive(case)):
            checked = expect_problem_code(ex, "SES-6", 409, "session_ended")
            for f in checked:
                f.expected = f"a post to an ended session refused: {f.expected}"
            self.take(checked, "ended-post")
        if ex.status != 200:
            return
        messages = returned_messages(ex)
        if messages is None:
            model.unknown = True  # the stream/shape checks report why
            return
        model.history.extend(messages)

    def after_list(self, ex: Exchange, model: SessionModel) -> None:
        body = ex.json()
        page = data_of(ex)
        if not isinstance(page, list) or "cursor=" in ex.url:
            return
        pagination = body.get("pagination") if isinstance(body, dict) else None
        complete = isinstance(pagination, dict) and pagination.get("nextCursor") is None
        want = _brief(model.history)
        got = _brief([m for m in page if isinstance(m, dict)])
        self.fuzzer.saw("MSG-5")
        if (complete and got != want) or (not complete and got != want[: len(got)]):
            self.report(
                finding(
                    "MSG-5",
                    f"the history to be the {len(want)} messages the posts returned "
                    f"{short(want, 300)}",
                    f"{len(got)} messages {short(got, 300)}",
                    ex,
                ),
                "history",
            )
            model.unknown = True

    def tenancy(self, case: Case, op_id: str, ex: Exchange) -> None:
        """Replay the request with the other organization's key: it must never succeed."""
        fz = self.fuzzer
        if op_id == "createChatCompletion":
            return
        if op_id != "createSession":
            sid = session_id_of(ex.url) if op_id != "getSession" else ex.url.rsplit("/", 1)[-1]
            if sid.split("?", 1)[0] not in self.model:
                return
        assert self.other_key is not None
        try:
            other = fz.send(case, key=self.other_key)
        except Unsendable:
            return
        if other.not_sent:
            return
        fz.check(case, other, "stateful", replay=True, stats=self.stats)
        if other.status is None:
            return
        if op_id == "createSession":
            self.foreign_agent(case, other)
            return
        clause = TENANCY_CLAUSES[op_id]
        if other.status in (400, 401, 429):
            return  # refused for another reason first: it says nothing about tenancy
        fz.saw("AUTH-4", clause)  # the other organization's key did not reach the session, or did
        if 200 <= other.status < 300:
            expected = "another organization's key never to reach this organization's sessions"
            f = finding("AUTH-4", expected, other.describe(), other)
            f.clause = clause
            self.report(f, "tenancy", op_id)
            return
        if not _is_positive(case):
            return
        if other.status != 404:
            got = f"HTTP {other.status} for another organization's session"
            f = finding("AUTH-4", "HTTP 404", got, other, "C")
            f.clause = clause
            self.report(f, "tenancy-status", op_id)

    def foreign_agent(self, case: Case, other: Exchange) -> None:
        """SES-3: creating a session for another organization's agent is 404 agent_not_found.

        Judged only when the replayed body named this organization's agent (a body that is not
        even JSON says nothing about agents: that is ERR-2's business)."""
        assert other.status is not None
        body = request_json(other)
        agent = self.fuzzer.target.agent_id
        if not (agent and isinstance(body, dict) and body.get("agentId") == agent):
            return
        succeeded = 200 <= other.status < 300
        if not succeeded and (not _is_positive(case) or other.status in (400, 401, 429)):
            return  # refused for another reason first: nothing to judge about the agent
        checked = expect_problem_code(
            other, "SES-3", 404, "agent_not_found", clause="foreign-agent"
        )
        for f in checked:
            f.expected = f"another organization's agent: {f.expected}"
        self.take(checked, "tenancy-create")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> None:
        import time

        if self.fuzzer.stopped:
            return  # the run's budget stopped sending: nothing to generate for
        # under a cap on agent calls: the first stateful run spends half of what the stateless
        # run left, the tenancy replays (which come after it) the rest
        self.fuzzer.window.plan(None if self.other_key else stateful_share)
        started = time.monotonic()
        base = self.fuzzer.schema.as_state_machine()
        runner = self

        class Machine(base):  # type: ignore[misc,valid-type]
            def step(self, input: StepInput) -> StepOutput:
                return runner.step(input.case)

        Machine.rule_order_seed = self.fuzzer.settings.seed
        Machine._hypothesis_internal_use_seed = self.fuzzer.settings.seed  # type: ignore[attr-defined]
        settings = hypothesis.settings(
            max_examples=self.fuzzer.settings.stateful_scenarios,
            stateful_step_count=self.fuzzer.settings.stateful_steps,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        try:
            with seed_only():
                run_state_machine_as_test(Machine, settings=settings)
        except (_Halt, Flaky):
            # the sequence stopped sending; Hypothesis's replay of it (to report it) then stops
            # earlier than the first run did, which it calls flaky: neither is a finding
            if not (self.fuzzer.stopped or self.halted):
                raise
        if self.silent:  # a note: the step that got no response is already charged to its rule
            got = f"the stateful run stopped sending after a step got no response: {self.silent}"
            note = Finding("ERR-4", "the target to keep answering", got, level="I")
            self.report(note, "halted")
        self.stats.seconds += time.monotonic() - started
