"""`--confirm N`: a test that failed on the target's findings is run again, up to N more times.

A failure that does not recur on a re-run is FLAKY (chatconform.verdicts: gating only under --strict,
or as `--flaky=fail|warn` says); one that recurs on every re-run stays FAIL, with a note that it did.
Both observations stay in the evidence: the failing attempt's findings (marked with the attempt that
passed), or the note of the re-runs. What is never re-run: an ERROR (a harness exception, a request the
run's budget did not send), a test the agent-call cap cut short, an expected failure (--expectations),
a failure in a fixture, a test of the fuzz suite (its seed replays it; a re-run would spend its
whole case budget again), and any test when the run's budget or the target's health says no more: the
deadline passed, the breaker counts failed exchanges, streams are abandoned, an exchange of the test
timed out or outgrew the byte cap, or the agent calls left are fewer than the test spent.

`Confirmer` is a pytest plugin (registered by chatconform.plugin when the count is above 0) whose
`pytest_runtest_protocol` plays setup, call, re-runs and teardown itself, as pytest-rerunfailures
does: the attempts before the last are logged with outcome "rerun" (R in the terminal; JUnit keeps
the final attempt, a FLAKY test as passed with a `chatconform-flaky` property). The plugin's own
makereport hands each attempt's TestRecord here (ATTEMPT) instead of applying it; the record this
module builds from all attempts is applied once, and carried to an xdist controller like any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.runner import call_and_report, show_test_item

from chatconform.rules import RULES
from chatconform.verdicts import Finding

ClauseKey = tuple[str, str | None]
FLAKY_PROPERTY = "chatconform-flaky"
CONFIRMED_PROPERTY = "chatconform-confirmed"


@dataclass
class Attempt:
    number: int  # 1 is the first run
    reports: list[pytest.TestReport]
    records: list[Any]  # chatconform.plugin.TestRecord
    limited: str | None = None  # the agent-call cap kept a request of it unsent
    agent_calls: int = 0  # the requests of it that claimed an agent call
    unhealthy: str | None = None  # an exchange of it timed out / was cut short

    @property
    def findings(self) -> list[Finding]:
        return [f for rec in self.records for f in rec.findings]

    def failing(self, strict: bool) -> dict[ClauseKey, Finding]:
        """The target's findings that fail, by (rule, clause): the first of each."""
        out: dict[ClauseKey, Finding] = {}
        for f in self.findings:
            if not f.is_note and f.grade(strict) == "FAIL":
                out.setdefault((f.rule, f.clause_id), f)
        return out

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.kind != "target"]

    def exercised(self) -> set[str]:
        return {r for rec in self.records for r in rec.exercised}

    @property
    def setup_failed(self) -> bool:
        return any(r.when == "setup" and not r.passed for r in self.reports)

    @property
    def expected(self) -> bool:
        return any(hasattr(r, "wasxfail") for r in self.reports)


@dataclass
class Confirmation:
    """What the re-runs of one test showed (summary.json's `confirm.tests`)."""

    test: str
    attempts: int
    outcome: str  # "flaky", "recurred", "not judged"
    rules: list[str] = field(default_factory=list)
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Confirmer:
    """The re-run protocol of the tests that name rules (see the module docstring)."""

    def __init__(self, state: Any, reruns: int) -> None:
        self.state = state
        self.reruns = reruns

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        from chatconform.plugin import (
            ATTEMPT,
            EXPECT,
            LAST_FAMILIES,
            LOG,
            REFUSED,
            _declared,
            _family,
        )

        if not _declared(item) or _family(item) in LAST_FAMILIES:
            # not a suite test; or the fuzz suite's, which its seed replays exactly (a re-run
            # would spend its whole case budget again): pytest's own protocol
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        ledger = self.state.agent_calls
        attempts: list[Attempt] = []
        stop_why = ""
        while True:
            for key in (EXPECT, LOG):  # each attempt records its own exchanges and outcome
                with contextlib.suppress(KeyError):
                    del item.stash[key]
            item.stash[ATTEMPT] = []
            if ledger is not None:
                item.stash[REFUSED] = ledger.refused_here
            attempt = self._play(item, len(attempts) + 1)
            attempts.append(attempt)
            stop_why = self._why_stop(attempts)
            again = not stop_why
            # before a re-run, tear down the test's own fixtures only: its parent stays set up
            teardown_next = item.parent if again else nextitem
            if item.session.shouldfail or item.session.shouldstop:
                teardown_next, again = None, False
            try:
                if not again:  # the final attempt: its record (of every attempt) goes with it
                    self._finish(item, attempts, stop_why)
                attempt.reports.append(
                    call_and_report(item, "teardown", False, nextitem=teardown_next)  # type: ignore[arg-type]
                )
            finally:
                if hasattr(item, "_request"):
                    item._request = False  # type: ignore[attr-defined]
                    item.funcargs = None  # type: ignore[attr-defined]
                with contextlib.suppress(KeyError):
                    del item.stash[ATTEMPT]
            for rep in attempt.reports:
                if again and rep.when == "call":
                    rep.outcome = "rerun"  # type: ignore[assignment]
                if again and rep.when == "teardown":
                    continue  # the next attempt's teardown closes the test case
                ihook.pytest_runtest_logreport(report=rep)
            if not again:
                break
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any) -> tuple[str, str, Any] | None:
        if report.outcome == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None

    # -- one attempt ------------------------------------------------------------------------
    def _play(self, item: pytest.Item, number: int) -> Attempt:
        """Setup and call of one attempt (the teardown waits until we know whether to re-run)."""
        from chatconform.plugin import ATTEMPT, LOG, _limited

        if hasattr(item, "_request") and not item._request:  # type: ignore[attr-defined]
            item._initrequest()  # type: ignore[attr-defined]
        rep = call_and_report(item, "setup", False)
        reports = [rep]
        if rep.passed:
            setup_only = item.config.getoption("setuponly", False)
            if item.config.getoption("setupshow", False):
                show_test_item(item, add_space=not setup_only)
            if not setup_only:
                reports.append(call_and_report(item, "call", False))
        log = item.stash.get(LOG, [])
        unhealthy = next(
            (
                f"{ex.method} {ex.url} "
                + (
                    "timed out"
                    if ex.timed_out
                    else "was cut short"
                    if ex.abandoned
                    else "outgrew the byte cap"
                )
                for ex in log
                if ex.timed_out or ex.abandoned or ex.over_cap
            ),
            None,
        )
        return Attempt(
            number,
            reports,
            list(item.stash.get(ATTEMPT, [])),
            limited=_limited(item, self.state),
            agent_calls=sum(1 for ex in log if ex.agent_claim),
            unhealthy=unhealthy,
        )

    # -- deciding -----------------------------------------------------------------------------
    def _why_stop(self, attempts: list[Attempt]) -> str:
        """Why no further attempt is made ("" : re-run). Distinguishes, in its text, an attempt
        that settled the question from one the run could not afford or judge."""
        strict = self.state.strict
        first, last = attempts[0], attempts[-1]
        if not first.failing(strict):
            return "passed" if len(attempts) == 1 else "settled"
        if len(attempts) == 1 and (
            first.errors() or first.limited or first.setup_failed or first.expected
        ):
            return "not eligible"
        if len(attempts) > 1:
            if not _judged(last, strict):
                return "not judged"
            if _flaky_keys(first, last, strict):
                return "settled"
        if len(attempts) > self.reruns:
            return "settled"
        return self._unaffordable(last)

    def _unaffordable(self, last: Attempt) -> str:
        """Why the run's budget or the target's health forbids a re-run ("" : it allows one)."""
        budget = self.state.budget
        if last.unhealthy:
            return f"budget: not re-run: {last.unhealthy}"
        if budget is not None:
            why = budget.refusal()
            if why is not None:
                return f"budget: not re-run, {why}"
            if budget.degraded:
                return f"budget: not re-run, stream tests abandoned: {budget.health_reason}"
            if budget.consecutive_failures or budget.unusable_in_a_row:
                return "budget: not re-run, the target's last answers were not usable"
        ledger = self.state.agent_calls
        left = ledger.left() if ledger is not None else None
        if left is not None and left < max(1, last.agent_calls):
            return f"budget: not re-run, {left} agent call(s) left of the cap, it needs {last.agent_calls}"
        return ""

    def _finish(self, item: pytest.Item, attempts: list[Attempt], stop_why: str) -> None:
        """Build, apply (and carry to an xdist controller) the test's record from its attempts."""
        from chatconform.plugin import carry_record

        records, conf = merge(attempts, self.state.strict, stop_why)
        last = attempts[-1]
        if conf is not None:  # JUnit writes the properties of the teardown report, made after this
            prop = FLAKY_PROPERTY if conf.outcome == "flaky" else CONFIRMED_PROPERTY
            item.user_properties.append((prop, f"{conf.outcome}: {conf.detail}"[:500]))
            for rec in records[-1:]:
                rec.confirmations.append(conf.to_json())
        carrier = last.reports[-1]  # its call (or failed setup): logged before the teardown
        for rec in records:
            carry_record(item, rec, carrier)


def _judged(attempt: Attempt, strict: bool) -> bool:
    """A re-run that can settle anything: it was neither stopped by the harness nor the cap."""
    return not (attempt.errors() or attempt.limited or attempt.setup_failed)


def _flaky_keys(first: Attempt, later: Attempt, strict: bool) -> set[ClauseKey]:
    """The first attempt's failures that a later, judged attempt examined without them failing."""
    fails, seen = later.failing(strict), later.exercised()
    return {k for k in first.failing(strict) if k not in fails and k[0] in seen}


def _attempts_text(numbers: Iterable[int]) -> str:
    ns = sorted(numbers)
    if len(ns) == 1:
        return f"attempt {ns[0]}"
    if ns == list(range(ns[0], ns[-1] + 1)):
        return f"attempts {ns[0]}-{ns[-1]}"
    return "attempts " + ", ".join(map(str, ns))


def merge(
    attempts: list[Attempt], strict: bool, stop_why: str
) -> tuple[list[Any], Confirmation | None]:
    """The records to apply for a test run `len(attempts)` times, and what the re-runs showed.

    The first attempt's records are the evidence. A failure that a later judged attempt did not
    repeat gets `flaky` ("failed on attempt 1, not on attempt 2"): FLAKY. One that recurred on
    every re-run stays FAIL, with a note (level I) saying so. A failure seen only on a re-run is
    FLAKY when the first attempt examined its rule clean, else an ordinary FAIL. A failing test not
    re-run because the budget or the target's health said no gets a note naming why."""
    first = attempts[0]
    records = list(first.records)
    failing0 = first.failing(strict)
    test = records[0].test if records else ""
    if not records or not failing0:
        return records, None
    notes: list[Finding] = []
    if len(attempts) == 1:
        if not stop_why.startswith("budget: "):
            return records, None
        why = stop_why.removeprefix("budget: ")
        for rule, clause in failing0:
            notes.append(_note(rule, clause, "the failure to be re-run (--confirm)", why, test))
        records[-1].findings.extend(notes)
        return records, Confirmation(test, 1, "not judged", sorted({r for r, _ in failing0}), why)
    judged = [a for a in attempts[1:] if _judged(a, strict)]
    flaky: dict[ClauseKey, int] = {}  # key -> the attempt that did not repeat it
    for a in judged:
        for k in _flaky_keys(first, a, strict):
            flaky.setdefault(k, a.number)
    for f in first.findings:
        k = (f.rule, f.clause_id)
        if k in flaky and not f.is_note and f.grade(strict) == "FAIL":
            f.flaky = f"failed on attempt 1, not on attempt {flaky[k]} of {len(attempts)}"
    recurred = [k for k in failing0 if k not in flaky]
    for rule, clause in recurred:
        seen_on = [a.number for a in judged if (rule, clause) in a.failing(strict)]
        if seen_on:
            got = f"recurred on {_attempts_text(seen_on)} ({len(seen_on)} of {len(attempts) - 1} re-runs)"
        else:
            got = f"not confirmed: the re-run could not judge it ({stop_why})"
        notes.append(_note(rule, clause, "the failure to recur when re-run (--confirm)", got, test))
    # a failure only a re-run showed
    seen0 = first.exercised()
    for a in judged:
        for (rule, clause), f in a.failing(strict).items():
            if (rule, clause) in failing0:
                continue
            extra = dataclasses.replace(f)
            if rule in seen0:
                extra.flaky = (
                    f"failed on attempt {a.number} only, not on attempt 1 of {len(attempts)}"
                )
            records[-1].findings.append(extra)
            failing0.setdefault((rule, clause), extra)
    records[-1].findings.extend(notes)
    if not judged:
        outcome, detail = (
            "not judged",
            f"re-run 2 could not judge the failure ({_last_error(attempts[-1])})",
        )
    elif flaky:
        outcome = "flaky"
        detail = "; ".join(
            f"{_scope(r, c)} failed on attempt 1, not on attempt {n}"
            for (r, c), n in sorted(flaky.items(), key=lambda p: (p[0][0], p[0][1] or ""))
        )
    else:
        outcome = "recurred"
        detail = f"every failure recurred on {len(judged)} re-run(s)"
    rules = sorted({r for r, _ in failing0})
    return records, Confirmation(test, len(attempts), outcome, rules, detail)


def _scope(rule: str, clause: str | None) -> str:
    return f"{rule}/{clause}" if clause and len(RULES[rule].clauses) > 1 else rule


def _last_error(attempt: Attempt) -> str:
    if attempt.limited:
        return attempt.limited
    err = next(iter(attempt.errors()), None)
    if err is not None:
        return f"{err.rule}: {err.got}"[:200]
    return "its setup failed"


def _note(rule: str, clause: str | None, expected: str, got: str, test: str) -> Finding:
    return Finding(rule, expected, got[:500], level="I", clause=clause, test=test)
