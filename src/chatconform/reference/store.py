"""Durable storage in SQLite (WAL, synchronous=FULL), used from one dedicated worker thread.

Every write commits before the caller answers, so a ``kill -9`` loses no answered message.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    draft_mode INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_session ON messages (session_id, seq);
"""


@dataclass(frozen=True)
class Tenants:
    """The stable organization and agent ids of a database (created on its first start)."""

    org_a: str
    org_b: str
    agent_a: str
    unpublished_a: str
    agent_b: str

    def agents(self) -> dict[str, tuple[str, bool]]:
        """agent id -> (owning org id, published)."""
        return {
            self.agent_a: (self.org_a, True),
            self.unpublished_a: (self.org_a, False),
            self.agent_b: (self.org_b, True),
        }


@dataclass(frozen=True)
class SessionRow:
    """A stored session, with its owning organization."""

    id: str
    org_id: str
    agent_id: str
    draft_mode: bool
    status: str
    created_at: str
    ended_at: str | None

    def public(self) -> dict[str, Any]:
        """The Session object of the API (no organization)."""
        return {
            "id": self.id,
            "agentId": self.agent_id,
            "status": self.status,
            "draftMode": self.draft_mode,
            "createdAt": self.created_at,
            "endedAt": self.ended_at,
        }


class Store:
    """Synchronous SQLite access on one connection; used only through :class:`AsyncStore`."""

    def __init__(self, path: str, writer: bool = True) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        if writer:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        else:
            self._db.execute("PRAGMA query_only=ON")

    def close(self) -> None:
        self._db.close()

    def tenants(self) -> Tenants:
        """The stable ids, created (once per database) on first use."""
        names = ("org_a", "org_b", "agent_a", "unpublished_a", "agent_b")
        prefixes = ("org_", "org_", "agt_", "agt_", "agt_")
        with self._tx():
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            for name, prefix in zip(names, prefixes, strict=True):
                if name not in rows:
                    rows[name] = prefix + uuid.uuid4().hex
                    self._db.execute("INSERT INTO meta VALUES (?, ?)", (name, rows[name]))
        return Tenants(**{name: rows[name] for name in names})

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction: COMMIT on success (durable: synchronous=FULL), else ROLLBACK."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def create_session(self, row: SessionRow) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.org_id, row.agent_id, int(row.draft_mode), row.status,
                 row.created_at, row.ended_at),
            )  # fmt: skip

    def get_session(self, session_id: str) -> SessionRow | None:
        cur = self._db.execute(
            "SELECT id, org_id, agent_id, draft_mode, status, created_at, ended_at"
            " FROM sessions WHERE id = ?",
            (session_id,),
        )
        found = cur.fetchone()
        if found is None:
            return None
        return SessionRow(found[0], found[1], found[2], bool(found[3]), *found[4:])

    def end_session(self, session_id: str, ended_at: str) -> SessionRow | None:
        with self._tx():
            self._db.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ?"
                " WHERE id = ? AND status = 'active'",
                (ended_at, session_id),
            )
        return self.get_session(session_id)

    def add_messages(self, session_id: str, messages: list[dict[str, Any]]) -> None:
        """Store ``messages`` (in order) in one transaction."""
        with self._tx():
            self._db.executemany(
                "INSERT INTO messages (id, session_id, body) VALUES (?, ?, ?)",
                [(m["id"], session_id, json.dumps(m, ensure_ascii=False)) for m in messages],
            )

    def list_messages(
        self, session_id: str, after: int | None, limit: int, newest_first: bool = False
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` messages past ``after``; the last one's position if more follow."""
        if newest_first:
            sql = (
                "SELECT seq, body FROM messages WHERE session_id = ? AND seq < ? ORDER BY seq DESC"
            )
            bound = after if after is not None else 2**62
        else:
            sql = "SELECT seq, body FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq ASC"
            bound = after if after is not None else -1
        rows = self._db.execute(sql + " LIMIT ?", (session_id, bound, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1][0] if (more and rows) else None
        return [json.loads(body) for _, body in rows], last


class _Worker:
    """One thread owning one :class:`Store` connection."""

    def __init__(self, path: str, writer: bool) -> None:
        name = "reference-db-" + ("write" if writer else "read")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        try:
            self._store = self._pool.submit(Store, path, writer).result()
        except BaseException:
            self._pool.shutdown(wait=True)
            raise

    async def run(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._store, *args, **kwargs))

    def run_sync(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return self._pool.submit(fn, self._store, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.submit(self._store.close).result()
        self._pool.shutdown(wait=True)


class AsyncStore:
    """SQLite off the event loop: one writer thread (commits, fsync) and one reader thread.

    WAL lets the reader see every committed write without waiting behind a writer's fsync.
    """

    def __init__(self, path: str) -> None:
        self._writer = _Worker(path, writer=True)
        try:
            self._reader = _Worker(path, writer=False)
        except BaseException:
            self._writer.close()
            raise

    async def write(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, …)`` on the writer thread."""
        return await self._writer.run(fn, *args, **kwargs)

    async def read(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, …)`` (a read) on the reader thread."""
        return await self._reader.run(fn, *args, **kwargs)

    def write_sync(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(store, …)`` on the writer thread from outside the event loop (startup)."""
        return self._writer.run_sync(fn, *args, **kwargs)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
