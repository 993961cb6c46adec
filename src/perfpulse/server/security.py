"""The daemon's front door: Host and Origin checks, security headers, login throttling and the one-time
setup token.

Threats in mind: a web page on the user's machine or LAN that makes the browser talk to the daemon (DNS
rebinding, cross-site WebSocket hijacking, CSRF from another localhost port), password guessing, and secrets
leaking into logs or Referer headers.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perfpulse.config import Settings, is_loopback

SESSION_COOKIE = "perfpulse_session"

#: No inline script or style, nothing from elsewhere, never framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_BASE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def split_host(value: str) -> str:
    """The host part of a Host header value, lower-cased: ``[::1]:8787`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def allowed_host_names(settings: Settings) -> frozenset[str]:
    """Host header values the daemon answers to.

    Loopback names always; the bind address; when bound to a wildcard, this machine's own addresses and
    names. A DNS-rebinding attack arrives with the attacker's host name, which is in none of these.
    """
    names = {"localhost", "127.0.0.1", "::1"}
    names.update(split_host(h) for h in settings.allowed_hosts)
    bind = settings.host.strip("[]").lower()
    wildcard = bind in ("0.0.0.0", "::", "")
    if not wildcard:
        names.add(bind)
    if wildcard or not is_loopback(bind):
        names.add(socket.gethostname().lower())
        with contextlib.suppress(OSError):
            names.add(socket.getfqdn().lower())
    if wildcard:
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(a.address.split("%", 1)[0].lower())
    return frozenset(n for n in names if n)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return str(v.decode("latin-1"))
    return None


def origin_allowed(origin: str | None, host_header: str | None, extra: Iterable[str]) -> bool:
    """A browser request's Origin is acceptable when absent (not a browser), the daemon's own origin, or
    explicitly allowed. ``null`` (sandboxed frames, file://) is never acceptable."""
    if origin is None:
        return True
    if origin in extra:
        return True
    if origin == "null" or not host_header:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


class GuardMiddleware:
    """Host allow-list for every request and WebSocket, Origin check for state-changing requests, and the
    security headers on every response."""

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str], origins: Iterable[str], tls: bool) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = frozenset(origins)
        self.headers = list(_BASE_HEADERS)
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host_header = _header(scope, b"host")
        if host_header is None or split_host(host_header) not in self.hosts:
            await self._reject(scope, send, 400, b"Invalid Host header")
            return
        if kind == "http" and scope["method"] in _UNSAFE_METHODS:
            origin = _header(scope, b"origin")
            if not origin_allowed(origin, host_header, self.origins):
                await self._reject(scope, send, 403, b"Cross-origin request refused")
                return
        if kind == "websocket":
            await self.app(scope, receive, send)
            return

        api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in self.headers if h[0] not in present)
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _reject(self, scope: Scope, send: Send, status: int, body: bytes) -> None:
        if scope["type"] == "websocket":
            # Refuse the handshake: the peer gets an HTTP 403 and nothing else.
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *self.headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


_SECRET_PATTERNS = (
    # Header lines, as websockets and h11 print them at debug level.
    (re.compile(r"(?im)^([<>]?\s*(?:authorization|cookie|set-cookie)\s*:\s*).*$"), r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[^\s'\"]+"), r"\1[redacted]"),
    (re.compile(re.escape(SESSION_COOKIE) + r"=[^;\s'\"]+"), SESSION_COOKIE + "=[redacted]"),
    (re.compile(r"pp_[A-Za-z0-9_-]{16,}"), "pp_[redacted]"),
)


class RedactSecrets(logging.Filter):
    """Scrubs credentials from log records: at debug level the HTTP and WebSocket layers print request
    headers, cookies and Authorization included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not ours to fix; let logging report it
            return True
        clean = text
        for pattern, repl in _SECRET_PATTERNS:
            clean = pattern.sub(repl, clean)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


#: Loggers that see raw requests (uvicorn hands its logger to the WebSocket protocol library).
RAW_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server")


def install_log_redaction() -> None:
    for name in RAW_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


class SlidingWindow:
    """Counts events per key over the last ``window`` seconds; memory bounded by ``max_keys`` (the least
    recently used keys are forgotten first, which only ever errs towards letting a request through)."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _prune(self, key: str, now: float) -> deque[float] | None:
        q = self._hits.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._hits[key]
            return None
        return q

    def retry_after(self, key: str, now: float | None = None) -> float | None:
        """Seconds until ``key`` may try again, or None when it is under the limit."""
        now = time.monotonic() if now is None else now
        q = self._prune(key, now)
        if q is None or len(q) < self.limit:
            return None
        return max(0.0, q[-self.limit] + self.window - now)

    def hit(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        q = self._prune(key, now)
        if q is None:
            q = deque(maxlen=self.limit)
            self._hits[key] = q
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        self._hits.move_to_end(key)
        q.append(now)

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)


class LoginThrottle:
    """Failed logins limited per client address and per username (each over a sliding window), plus a cap
    on attempts per client whatever their outcome, since each attempt costs an argon2 hash."""

    def __init__(
        self, *, per_client: int, per_user: int, window: float, attempts_per_minute: int = 30
    ) -> None:
        self.client_failures = SlidingWindow(per_client, window)
        self.user_failures = SlidingWindow(per_user, window)
        self.attempts = SlidingWindow(attempts_per_minute, 60.0)

    def retry_after(self, client: str, username: str) -> float | None:
        waits = [
            self.client_failures.retry_after(client),
            self.user_failures.retry_after(username.lower()),
            self.attempts.retry_after(client),
        ]
        found = [w for w in waits if w is not None]
        return max(found) if found else None

    def attempt(self, client: str) -> None:
        self.attempts.hit(client)

    def failed(self, client: str, username: str) -> None:
        self.client_failures.hit(client)
        self.user_failures.hit(username.lower())

    def succeeded(self, username: str) -> None:
        self.user_failures.reset(username.lower())


def client_address(host: str | None) -> str:
    """Rate-limit key of a peer: IPv6 peers are grouped by /64, since one host usually owns a whole /64."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class SetupGate:
    """The one-time token that lets the first admin be created from the browser.

    It lives in ``<data_dir>/setup-token`` (mode 0600), so only someone who can read the daemon's state can
    use it, and it is deleted as soon as an admin exists. A restart before that reuses the same token.
    """

    FILE = "setup-token"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.FILE
        self._token: str | None = None

    def open(self) -> str:
        """The current token, created if needed."""
        if self._token is not None:
            return self._token
        try:
            existing = self.path.read_text().strip()
        except FileNotFoundError:
            existing = ""
        if len(existing) >= 32 and (self.path.stat().st_mode & 0o077) == 0:
            self._token = existing
            return existing
        token = secrets.token_urlsafe(32)
        tmp = self.path.with_name(f".{self.FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (token + "\n").encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._token = token
        return token

    @property
    def is_open(self) -> bool:
        return self._token is not None

    def check(self, candidate: str) -> bool:
        token = self._token
        if token is None:
            return False
        return hmac.compare_digest(token.encode(), candidate.strip().encode("utf-8", "replace"))

    def close(self) -> None:
        self._token = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
