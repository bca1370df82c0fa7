"""The shared state of one server run, reached by handlers through ``request.app.state.ctx``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from chatconform.reference.auth import KeyRing, Principal, authorize
from chatconform.reference.ratelimit import RateLimiter
from chatconform.reference.sendlog import SendLog
from chatconform.reference.settings import Settings
from chatconform.reference.store import AsyncStore, Tenants
from chatconform.reference.turns import TurnManager


@dataclass
class Context:
    settings: Settings
    db: AsyncStore
    tenants: Tenants
    keys: KeyRing
    turns: TurnManager
    limiter: RateLimiter
    sendlog: SendLog | None = None  # ``--calibration`` only: the server's own send times

    def principal(self, request: Request, scope: str, posting: bool = False) -> Principal:
        """Authenticate ``request`` for ``scope`` (401/403 as ApiError)."""
        values = request.headers.getlist("authorization")
        return authorize(self.keys, self.settings.switches, values, scope, posting)

    def own_agent(self, principal: Principal) -> str:
        """The published agent of the caller's organization (what some faults fall back to)."""
        for agent, (org, published) in self.tenants.agents().items():
            if org == principal.org_id and published:
                return agent
        raise LookupError("the organization has no published agent")


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx
