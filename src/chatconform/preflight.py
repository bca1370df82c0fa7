"""A few bounded requests before a run or a load test: say plainly when a target cannot be used.

Only what no test could ever pass on stops the run here (refused connection, every probe 401, every
probe 404); a target that hangs or misbehaves is left to the suites, which report it rule by rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from chatconform.client import Client
from chatconform.record import Exchange
from chatconform.target import Limits, Target

PROBE_TIMEOUT_S = 5.0  # per read
PROBE_DEADLINE_S = 10.0  # per probe, headers and body


class TargetUnusable(ValueError):
    """The target cannot be tested as configured: exit 2 with this one line."""


def check_target(target: Target, sessions: bool, completions: bool) -> None:
    if target.api_key is None:
        raise TargetUnusable("no API key: give --api-key or FLOWYTE_API_KEY (or --target-file)")
    unknown = "cc-preflight-unknown-session"
    # a correct answer to a probe takes milliseconds; one that hangs is the suites' to report
    lim = target.limits
    short = Limits(
        min(lim.timeout, PROBE_TIMEOUT_S), min(lim.stream_timeout, PROBE_DEADLINE_S),
        max_body_bytes=lim.max_body_bytes,
    )  # fmt: skip
    with Client(dataclasses.replace(target, limits=short)) as client:
        plan: list[Callable[[], Exchange]] = []
        if sessions:
            plan.append(lambda: client.get_session(unknown))
            plan.append(lambda: client.request("POST", "/chat/sessions", json_body={}))
        if completions:
            plan.append(lambda: client.request("POST", "/chat/completions", json_body={}))
        probes = [plan[0]()]
        if not probes[0].timed_out:  # a target that hangs costs one timeout here, not three
            probes += [probe() for probe in plan[1:]]
    first = probes[0]
    if first.status is None and not first.timed_out:
        raise TargetUnusable(f"cannot reach the target {target.base_url}: {first.error}")
    if all(p.status == 401 for p in probes):
        raise TargetUnusable(
            f"the target {target.base_url} refused the API key on every probe (401): check "
            "--api-key / FLOWYTE_API_KEY"
        )
    if all(p.status == 404 for p in probes):
        raise TargetUnusable(
            f"every probe of {target.base_url} got 404: is the base URL right? It names the API "
            "root, e.g. http://127.0.0.1:8080/api/v1"
        )
