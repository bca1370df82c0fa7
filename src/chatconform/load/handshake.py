"""Distributed runs: a worker and its master agree on what they are before any request is sent.

A worker says hello (its chatconform version and the hash of the spec its checks use); the master
answers with its own, and with the run's settings, which the worker adopts, so that one command
line serves both roles and the master's options win where they differ. A worker whose master is
another chatconform version or judges against another spec refuses to run: its samples would
not mean what the master's summary says they mean.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from typing import Any

import chatconform

HELLO_MSG = (
    "chatconform_hello"  # worker -> master: {identity}; master -> worker: {identity, settings}
)
REFUSED_MSG = "chatconform_refused"  # worker -> master: {worker, reason}
IDENTITY_ENV = "CHATCONFORM_LOAD_IDENTITY"  # replaces the identity (to test a refusal)


@cache
def spec_hash() -> str:
    from chatconform.spec import SPEC_PATH

    try:
        return hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest()[:16]
    except OSError:
        return "no-spec"


def identity() -> dict[str, str]:
    override = os.environ.get(IDENTITY_ENV)
    if override:
        version, _, digest = override.partition("/")
        return {"version": version, "spec_hash": digest or spec_hash()}
    return {"version": chatconform.__version__, "spec_hash": spec_hash()}


def mismatch(mine: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    """Why a worker with identity `mine` refuses a master with `theirs`; None when they agree."""
    if mine.get("version") != theirs.get("version"):
        return (
            f"the master runs chatconform {theirs.get('version')} and this worker "
            f"{mine.get('version')}: install the same version on both"
        )
    if mine.get("spec_hash") != theirs.get("spec_hash"):
        return (
            f"the master's spec (sha256 {theirs.get('spec_hash')}) differs from this worker's "
            f"({mine.get('spec_hash')}): run both from the same chatconform release"
        )
    return None
