"""Users, sessions and API tokens, kept in the daemon's SQLite file next to the history tables.

Every table here is prefixed ``auth_`` so the history store can own the rest of the file. Nothing secret is
stored in clear: passwords are argon2id hashes; session ids and API tokens are random 256-bit values of which
only the SHA-256 is kept (a stolen database file cannot be replayed as a login). Sessions live in the
database rather than in memory so that ``perfpulse user passwd`` on the command line revokes the sessions of
a running daemon at once.

All methods are blocking (sqlite3 and argon2 both are); the server calls them through ``run_blocking``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
#: argon2 hashes whatever it is given; a megabyte password would still cost only one hash, but there is no
#: reason to accept one.
MAX_PASSWORD = 1024
TOKEN_PREFIX = "pp_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret
#: How often a session's last-seen time is written back (a write per request would be wasteful).
TOUCH_EVERY = 60.0
#: Ids per statement in batched lookups (well under SQLite's smallest host-parameter limit, 999).
_BATCH = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS auth_users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at REAL NOT NULL,
    password_changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES auth_users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_sessions_user ON auth_sessions(user_id);
CREATE TABLE IF NOT EXISTS auth_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES auth_users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL DEFAULT 'read',
    created_at REAL NOT NULL,
    last_used REAL
);
INSERT OR IGNORE INTO auth_meta(key, value) VALUES ('schema_version', '1');
"""


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


class UserExists(AccountError):
    pass


class NoSuchUser(AccountError):
    pass


class LastAdmin(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    created_at: float

    def as_dict(self) -> dict[str, object]:
        return {"username": self.username, "role": self.role, "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    username: str
    scope: str
    created_at: float
    last_used: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "username": self.username,
            "scope": self.scope,
            "created_at": self.created_at,
            "last_used": self.last_used,
        }


def digest(secret: str) -> str:
    """SHA-256 of a random secret. Fine for 256-bit random values (no dictionary to attack), unlike
    passwords, which get argon2id."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise AccountError(
            "a username is 1-64 characters: letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"a password may have at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


class AccountStore:
    """Accounts in ``path`` (created with its directory if missing, mode 0600)."""

    def __init__(self, path: Path | str, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Create it private before sqlite does: it holds password hashes.
            self.path.touch(mode=0o600)
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy_hash: str | None = None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    # -- users --------------------------------------------------------------------------------------------
    @staticmethod
    def _user(row: tuple[object, ...]) -> User:
        return User(int(cast(int, row[0])), str(row[1]), cast(Role, row[2]), float(cast(float, row[3])))

    def hash_password(self, password: str) -> str:
        return self._hasher.hash(check_password(password))

    def add_user(self, username: str, password: str, role: str = "viewer") -> User:
        check_username(username)
        r = check_role(role)
        hashed = self.hash_password(password)
        now = time.time()
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO auth_users(username, password_hash, role, created_at, password_changed_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (username, hashed, r, now, now),
                )
        except sqlite3.IntegrityError:
            raise UserExists(f"user {username!r} already exists") from None
        return User(int(cast(int, cur.lastrowid)), username, r, now)

    def get_user(self, username: str) -> User | None:
        rows = self._read(
            "SELECT id, username, role, created_at FROM auth_users WHERE username = ?", (username,)
        )
        return self._user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        rows = self._read("SELECT id, username, role, created_at FROM auth_users ORDER BY username")
        return [self._user(r) for r in rows]

    def has_admin(self) -> bool:
        return bool(self._read("SELECT 1 FROM auth_users WHERE role = 'admin' LIMIT 1"))

    def _admins_other_than(self, db: sqlite3.Connection, user_id: int) -> int:
        row = db.execute(
            "SELECT count(*) FROM auth_users WHERE role = 'admin' AND id != ?", (user_id,)
        ).fetchone()
        return int(row[0])

    def set_password(self, username: str, password: str) -> User:
        """New password; every session of the user ends (a stolen session must not outlive the change)."""
        hashed = self.hash_password(password)
        with self._tx() as db:
            row = db.execute(
                "SELECT id, username, role, created_at FROM auth_users WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                raise NoSuchUser(f"no user {username!r}")
            user = self._user(row)
            db.execute(
                "UPDATE auth_users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                (hashed, time.time(), user.id),
            )
            db.execute("DELETE FROM auth_sessions WHERE user_id = ?", (user.id,))
        return user

    def set_role(self, username: str, role: str) -> User:
        r = check_role(role)
        with self._tx() as db:
            row = db.execute(
                "SELECT id, username, role, created_at FROM auth_users WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                raise NoSuchUser(f"no user {username!r}")
            user = self._user(row)
            if user.role == "admin" and r != "admin" and self._admins_other_than(db, user.id) == 0:
                raise LastAdmin(f"{username!r} is the last admin; make another admin first")
            db.execute("UPDATE auth_users SET role = ? WHERE id = ?", (r, user.id))
            if r != user.role:
                # A demoted admin's open sessions must not keep admin rights.
                db.execute("DELETE FROM auth_sessions WHERE user_id = ?", (user.id,))
        return User(user.id, user.username, r, user.created_at)

    def remove_user(self, username: str) -> None:
        """Remove a user with their sessions and tokens; the last admin cannot be removed."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id, username, role, created_at FROM auth_users WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                raise NoSuchUser(f"no user {username!r}")
            user = self._user(row)
            if user.role == "admin" and self._admins_other_than(db, user.id) == 0:
                raise LastAdmin(f"{username!r} is the last admin and cannot be removed")
            db.execute("DELETE FROM auth_users WHERE id = ?", (user.id,))

    def verify_password(self, username: str, password: str) -> User | None:
        """The user when the password is right, else None — taking about the same time whether or not the
        user exists (an unknown name is checked against a dummy hash), so timing does not tell names apart."""
        rows = self._read(
            "SELECT id, username, role, created_at, password_hash FROM auth_users WHERE username = ?",
            (username,),
        )
        if len(password) > MAX_PASSWORD:
            password = password[:MAX_PASSWORD]
        if not rows:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            with suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._dummy_hash, password)
            return None
        row = rows[0]
        stored = str(row[4])
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        user = self._user(row[:4])
        if self._hasher.check_needs_rehash(stored):
            with self._tx() as db:
                db.execute(
                    "UPDATE auth_users SET password_hash = ? WHERE id = ?",
                    (self._hasher.hash(password), user.id),
                )
        return user

    # -- sessions -----------------------------------------------------------------------------------------
    def create_session(self, user: User, *, lifetime: float) -> str:
        """A new session for ``user``; returns the secret that goes into the cookie (stored only hashed)."""
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO auth_sessions(id, user_id, created_at, last_seen, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (digest(secret), user.id, now, now, now + lifetime),
            )
            db.execute("DELETE FROM auth_sessions WHERE expires_at < ?", (now,))
        return secret

    def lookup_session(self, secret: str, *, idle: float) -> tuple[User, str] | None:
        """The session's user and id when ``secret`` names a live session; an expired or idle one is
        deleted and gives None."""
        if not secret or len(secret) > 256:
            return None
        sid = digest(secret)
        rows = self._read(
            "SELECT u.id, u.username, u.role, u.created_at, s.last_seen, s.expires_at "
            "FROM auth_sessions s JOIN auth_users u ON u.id = s.user_id WHERE s.id = ?",
            (sid,),
        )
        if not rows:
            return None
        row = rows[0]
        now = time.time()
        last_seen = float(cast(float, row[4]))
        expires = float(cast(float, row[5]))
        if now >= expires or now - last_seen >= idle:
            self.revoke_session(sid)
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self._tx() as db:
                db.execute("UPDATE auth_sessions SET last_seen = ? WHERE id = ?", (now, sid))
        return self._user(row[:4]), sid

    def live_credentials(
        self, sessions: Collection[str], tokens: Collection[int], *, idle: float
    ) -> tuple[set[str], set[int]]:
        """Which of these session ids and token ids still authenticate, by the rules of ``lookup_session``
        and ``lookup_token``: one indexed primary-key lookup per id, batched into a few statements, nothing
        written. The daemon asks this every few seconds about its open WebSockets, so that a session ended
        elsewhere (logout, a password or role change, a removed user, ``perfpulse user passwd``, expiry)
        stops streaming too."""
        now = time.time()
        live_sessions: set[str] = set()
        live_tokens: set[int] = set()
        sids = list(sessions)
        tids = [int(t) for t in tokens]
        with self._lock:
            for i in range(0, len(sids), _BATCH):
                chunk = sids[i : i + _BATCH]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT id FROM auth_sessions WHERE id IN ({marks}) "  # noqa: S608 - only placeholders
                    "AND expires_at > ? AND last_seen > ?",
                    (*chunk, now, now - idle),
                )
                live_sessions.update(str(r[0]) for r in rows)
            for i in range(0, len(tids), _BATCH):
                tchunk = tids[i : i + _BATCH]
                marks = ",".join("?" * len(tchunk))
                rows = self._db.execute(
                    f"SELECT id FROM auth_tokens WHERE id IN ({marks})",  # noqa: S608 - only placeholders
                    tuple(tchunk),
                )
                live_tokens.update(int(r[0]) for r in rows)
        return live_sessions, live_tokens

    def revoke_session(self, session_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM auth_sessions WHERE id = ?", (session_id,))

    def session_count(self, username: str) -> int:
        rows = self._read(
            "SELECT count(*) FROM auth_sessions s JOIN auth_users u ON u.id = s.user_id WHERE u.username = ?",
            (username,),
        )
        return int(cast(int, rows[0][0]))

    # -- API tokens ---------------------------------------------------------------------------------------
    def create_token(self, user: User, name: str) -> tuple[str, TokenInfo]:
        """A read-only API token owned by ``user``; the plain token is returned once and never stored."""
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise AccountError("a token name is 1-100 characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO auth_tokens(name, token_hash, user_id, scope, created_at) "
                "VALUES (?, ?, ?, 'read', ?)",
                (name, digest(secret), user.id, now),
            )
        return secret, TokenInfo(int(cast(int, cur.lastrowid)), name, user.username, "read", now, None)

    def lookup_token(self, secret: str) -> tuple[User, int] | None:
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 256:
            return None
        rows = self._read(
            "SELECT u.id, u.username, u.role, u.created_at, t.id, t.last_used "
            "FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id WHERE t.token_hash = ?",
            (digest(secret),),
        )
        if not rows:
            return None
        row = rows[0]
        now = time.time()
        last = row[5]
        if last is None or now - float(cast(float, last)) >= TOUCH_EVERY:
            with self._tx() as db:
                db.execute("UPDATE auth_tokens SET last_used = ? WHERE id = ?", (now, row[4]))
        return self._user(row[:4]), int(cast(int, row[4]))

    def list_tokens(self) -> list[TokenInfo]:
        rows = self._read(
            "SELECT t.id, t.name, u.username, t.scope, t.created_at, t.last_used "
            "FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id ORDER BY t.id"
        )
        return [
            TokenInfo(
                int(cast(int, r[0])),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                float(cast(float, r[4])),
                None if r[5] is None else float(cast(float, r[5])),
            )
            for r in rows
        ]

    def revoke_token(self, token_id: int) -> bool:
        with self._tx() as db:
            cur = db.execute("DELETE FROM auth_tokens WHERE id = ?", (token_id,))
        return cur.rowcount > 0
