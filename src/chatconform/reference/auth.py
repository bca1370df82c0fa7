"""Credentials generated at start, and bearer-key authentication with scopes and tenancy.

Secrets are fresh per start (``secrets.token_urlsafe``) and held only in memory, hashed; the
organization ids they map to are stable (stored in the database), so sessions survive a restart.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace

from chatconform.reference.faults import Switches
from chatconform.reference.problems import ApiError
from chatconform.reference.store import Tenants

READ = "chat:read"
WRITE = "chat:write"
PUBLIC = "chat:public"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an organization and the key's scopes."""

    org_id: str
    scopes: frozenset[str]
    publishable: bool = False
    key_id: str = ""  # a short digest of the key: rate-limit buckets, never the key itself


@dataclass(frozen=True)
class Credentials:
    """The secret values of one server run (never logged, never printed)."""

    api_key: str
    read_only_key: str
    write_only_key: str
    other_tenant_key: str
    publishable_key: str


def _secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(24)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    """Maps key digests to principals; lookups never compare the raw secrets."""

    def __init__(self, tenants: Tenants) -> None:
        self.credentials = Credentials(
            api_key=_secret("flowyte_sk_test_"),
            read_only_key=_secret("flowyte_sk_test_"),
            write_only_key=_secret("flowyte_sk_test_"),
            other_tenant_key=_secret("flowyte_sk_test_"),
            publishable_key=_secret("flowyte_pk_test_"),
        )
        c = self.credentials
        both = frozenset({READ, WRITE})
        self._keys: dict[bytes, Principal] = {
            _digest(c.api_key): Principal(tenants.org_a, both),
            _digest(c.read_only_key): Principal(tenants.org_a, frozenset({READ})),
            _digest(c.write_only_key): Principal(tenants.org_a, frozenset({WRITE})),
            _digest(c.other_tenant_key): Principal(tenants.org_b, both),
            _digest(c.publishable_key): Principal(tenants.org_a, frozenset({PUBLIC}), True),
        }

    def lookup(self, key: str) -> Principal | None:
        digest = _digest(key)
        found = self._keys.get(digest)
        return None if found is None else replace(found, key_id=digest.hex()[:16])


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive), or None."""
    if header is None:
        return None
    parts = header.strip().split(" ")
    parts = [p for p in parts if p]
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    token = parts[1]
    if not (token.startswith("flowyte_sk_") or token.startswith("flowyte_pk_")):
        return None
    return token


def authorize(
    keys: KeyRing, switches: Switches, headers: list[str], scope: str, posting: bool = False
) -> Principal:
    """The principal of a request needing ``scope``: 401 without a valid key, 403 without the scope.

    ``headers`` are all the request's Authorization header values; a key anywhere else is ignored.
    """
    token = bearer_token(headers[0]) if len(headers) == 1 else None
    principal = keys.lookup(token) if token is not None else None
    if principal is None:
        raise ApiError(
            401,
            "unauthorized",
            "a valid secret key is required: Authorization: Bearer flowyte_sk_…",
            headers={"WWW-Authenticate": 'Bearer realm="flowyte"'},
        )
    if principal.publishable:
        if switches.fault_is("publishable-accepted"):
            return replace(principal, scopes=frozenset({READ, WRITE}), publishable=False)
        raise ApiError(403, "publishable_key_not_allowed", "publishable keys cannot use this API")
    if scope not in principal.scopes:
        if posting and switches.fault_is("readonly-can-post"):
            return principal
        raise ApiError(403, "insufficient_scope", f"the key lacks the {scope} scope")
    return principal
