"""WebSocket fan-out: each tick serialized once, delivered to any number of clients, none waiting for another.

Per tick, each collector's part is serialized once per audience (admins see everything; viewers never get a
collector's ``sensitive`` keys, e.g. process command lines), and each distinct message — audience x the set
of collectors a client subscribed to — is assembled once from those parts by byte concatenation. Clients
with the same view share the very same ``bytes`` object.

Each client has a tiny queue that keeps the newest ticks. Publishing never awaits: it drops the oldest tick
of a full queue and moves on, so a slow or stalled client costs the others nothing. A client whose queue has
overflowed without a break for ``stall_timeout`` seconds is disconnected; one that stops answering pings is
closed by the server's keepalive. Messages go out as binary frames holding UTF-8 JSON (text frames would be
re-encoded once per client).

A ring of recent ticks (``ring_seconds``, at most ``ring_max_bytes``) gives a (re)connecting client its
backfill; it holds each tick's serialized parts, so backfill costs concatenation, not serialization.

A client that asks for lean ticks (``lean=1``) is not sent a collector's ``sticky`` keys (the perf events
that cannot be counted and why, the top processes' command lines: over half of a tick, and the same from
one tick to the next) while they stay as they were: the collector's part then says ``"kept": {key: seq}``,
the tick that last carried that value. An object that changed in part (processes entering and leaving the
top) goes out as the entries that changed, with ``"patch": {key: {"base": seq, "drop": [...]}}``. The
hub sends such a client a full tick first (the backfill, or the first live tick), again after its queue
overflowed (the dropped tick may have carried a change), and whenever the client asks (``resync``), so a
client holds every value a lean tick refers to.

A WebSocket is authenticated once, at the handshake, but a session can end while the socket is open (logout,
a password or role change, a removed user, ``perfpulse user passwd`` from another process, expiry). So the
hub re-validates the credentials of its open sockets against the account store every ``check_every``
seconds, and at once when the API has just revoked something (``recheck``): one batched query per check for
the distinct sessions and tokens in use, run off the event loop, never per tick or per client. A socket
whose credential no longer authenticates is closed with ``SESSION_ENDED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from perfpulse.collectors.base import run_blocking
from perfpulse.model import Snapshot

log = logging.getLogger("perfpulse.hub")

PROTOCOL_VERSION = 1
MAX_INBOUND = 64 * 1024
#: Close code for a socket whose session (or API token) stopped authenticating; the client should log in
#: again rather than reconnect with the same credential.
SESSION_ENDED = 4401
#: Default seconds between two re-validations of the open sockets' credentials.
CHECK_EVERY = 2.0

#: (session ids, token ids) in use -> the subsets that still authenticate. Blocking; run in a thread.
CredentialCheck = Callable[[frozenset[str], frozenset[int]], tuple[Collection[str], Collection[int]]]

#: (admin?, subscribed collectors or None for all, lean?)
ViewKey = tuple[bool, frozenset[str] | None, bool]


class _Held:
    """A sticky value as the hub last saw it: serialized (an object entry by entry), the seq of the tick it
    changed at, and the seq of the tick it was last seen in."""

    __slots__ = ("seen", "since", "value")

    def __init__(self, value: bytes | dict[str, bytes], seq: int) -> None:
        self.value = value
        self.since = seq
        self.seen = seq


#: (collector, admin audience?, key) -> the value as of the last tick
Held = dict[tuple[str, bool, str], _Held]


class _Entry:
    """One tick, kept as bytes: the message head and each collector's part, per audience.

    Parts are serialized when the tick is published (whether or not anyone listens), so the ring holds
    compact bytes rather than the Snapshot's Python objects. Whole messages are assembled from parts on
    demand; only the newest tick keeps them cached, since that is the one every client wants at once.
    """

    __slots__ = ("head", "lean", "messages", "monotonic", "names", "parts", "seq", "size", "wall_time")

    def __init__(
        self,
        snapshot: Snapshot,
        sensitive: Mapping[str, frozenset[str]],
        sticky: Mapping[str, frozenset[str]] | None = None,
        held: Held | None = None,
    ) -> None:
        self.seq = snapshot.seq
        self.wall_time = snapshot.wall_time
        self.monotonic = snapshot.monotonic
        head = orjson.dumps(
            {
                "type": "tick",
                "seq": snapshot.seq,
                "host": snapshot.host,
                "wall_time": snapshot.wall_time,
                "monotonic": snapshot.monotonic,
                "interval": snapshot.interval,
            }
        )
        self.head = head[:-1] + b',"collectors":{'
        self.names: list[str] = list(snapshot.meta)
        #: (collector, for_admin) -> part; a viewer part exists only where it differs from the admin one.
        self.parts: dict[tuple[str, bool], bytes] = {}
        #: Like ``parts``, without the sticky keys, for lean clients; only the newest tick keeps them.
        self.lean: dict[tuple[str, bool], bytes] = {}
        for name in self.names:
            data = snapshot.data.get(name, {})
            meta = snapshot.meta[name].as_dict()
            key = orjson.dumps(name) + b":"
            self.parts[(name, True)] = key + _dumps({"data": data, "meta": meta})
            audiences = [(True, data)]
            hidden = sensitive.get(name)
            if hidden and any(k in data for k in hidden):
                shown = {k: v for k, v in data.items() if k not in hidden}
                self.parts[(name, False)] = key + _dumps({"data": shown, "meta": meta})
                audiences.append((False, shown))
            keys = sticky.get(name) if sticky else None
            if keys and held is not None:
                for admin, view in audiences:
                    lean = self._lean(name, admin, view, keys, held)
                    if lean is not None:
                        self.lean[(name, admin)] = key + _dumps({**lean, "meta": meta})
        self.size = len(self.head) + sum(len(p) for p in self.parts.values())
        self.messages: dict[ViewKey, bytes] = {}

    def _lean(
        self, name: str, admin: bool, data: Mapping[str, Any], keys: frozenset[str], held: Held
    ) -> dict[str, Any] | None:
        """The lean form of one collector's part (``data``, ``kept``, ``patch``), or None when it would be
        the full one. A sticky value the same as last tick's is left out (``kept``: the seq it changed at);
        an object whose entries changed only in part is sent as those entries (``patch``: the tick it
        applies to and the entries that went). ``held``, the hub's memory of the values from one tick to
        the next, is updated here."""
        kept: dict[str, int] = {}
        patch: dict[str, dict[str, Any]] = {}
        changed: dict[str, dict[str, Any]] = {}
        for k in keys:
            slot = (name, admin, k)
            if k not in data:
                held.pop(slot, None)  # gone: when it comes back it is news again
                continue
            value = data[k]
            now: bytes | dict[str, bytes]
            now = {str(e): _dumps(v) for e, v in value.items()} if isinstance(value, dict) else _dumps(value)
            before = held.get(slot)
            if before is not None and before.value == now:
                kept[k] = before.since
                before.seen = self.seq
                continue
            if before is not None and isinstance(before.value, dict) and isinstance(now, dict):
                was = before.value
                new = {e: v for e, v in value.items() if was.get(str(e)) != now[str(e)]}
                gone = [e for e in was if e not in now]
                size = sum(len(now[str(e)]) for e in new) + sum(len(e) + 3 for e in gone)
                whole = sum(len(e) + 3 + len(v) for e, v in now.items())
                if size * 2 < whole:  # worth it only when well under the whole value
                    patch[k] = {"base": before.seen, "drop": gone}
                    changed[k] = new
            held[slot] = _Held(now, self.seq)  # news: this tick carries it, lean or not
        if not kept and not patch:
            return None
        lean: dict[str, Any] = {"data": {k: changed.get(k, v) for k, v in data.items() if k not in kept}}
        if kept:
            lean["kept"] = kept
        if patch:
            lean["patch"] = patch
        return lean

    def part(self, name: str, admin: bool, lean: bool = False) -> bytes:
        # A viewer gets the admin's bytes unless sensitive keys made a part of its own.
        audience = admin or (name, False) not in self.parts
        if lean:
            part = self.lean.get((name, audience))
            if part is not None:
                return part
        return self.parts[(name, audience)]

    def message(self, key: ViewKey) -> bytes:
        admin, subs, lean = key
        names = self.names if subs is None else [n for n in self.names if n in subs]
        return self.head + b",".join(self.part(n, admin, lean) for n in names) + b"}}"


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=_fallback)


class Client:
    """One connected WebSocket as the hub sees it."""

    __slots__ = (
        "admin",
        "close_code",
        "control",
        "drop_reason",
        "dropped",
        "id",
        "lean",
        "overflows",
        "primed",
        "sent",
        "session_id",
        "stalled_since",
        "subs",
        "ticks",
        "token_id",
        "username",
        "wake",
    )

    def __init__(
        self,
        cid: int,
        *,
        admin: bool,
        username: str,
        subs: frozenset[str] | None,
        queue: int,
        session_id: str | None = None,
        token_id: int | None = None,
        lean: bool = False,
    ) -> None:
        self.id = cid
        #: The credential the handshake was authenticated with (the session's stored id, or the token's id).
        self.session_id = session_id
        self.token_id = token_id
        self.admin = admin
        self.username = username
        self.subs = subs
        #: Whether the client takes lean ticks, and whether it already holds the sticky values they refer to.
        self.lean = lean
        self.primed = False
        self.ticks: deque[bytes] = deque(maxlen=queue)
        self.control: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.dropped = asyncio.Event()
        self.drop_reason = ""
        self.close_code = 1008
        self.overflows = 0
        self.sent = 0
        self.stalled_since: float | None = None

    @property
    def key(self) -> ViewKey:
        """The view of the next live tick: lean once the client holds the sticky values."""
        return (self.admin, self.subs, self.lean and self.primed)

    def resync(self) -> None:
        """Send the next tick in full (the client lacks a sticky value, or its view changed)."""
        self.primed = False

    def drop(self, reason: str, code: int = 1008) -> None:
        """Disconnect this client (1008: policy violation, e.g. too slow; 1001: server going away)."""
        if not self.dropped.is_set():
            self.drop_reason = reason
            self.close_code = code
            self.dropped.set()


class Hub:
    def __init__(
        self,
        *,
        max_clients: int = 1000,
        ring_seconds: float = 300.0,
        ring_max_bytes: int = 64 * 1024 * 1024,
        queue: int = 2,
        stall_timeout: float = 15.0,
        sensitive: Callable[[], Mapping[str, frozenset[str]]] = dict,
        sticky: Callable[[], Mapping[str, frozenset[str]]] = dict,
        clock: Callable[[], float] = time.monotonic,
        check_every: float = CHECK_EVERY,
    ) -> None:
        self.max_clients = max_clients
        self.check_every = check_every
        self._recheck = asyncio.Event()
        self.ring_seconds = ring_seconds
        self.ring_max_bytes = ring_max_bytes
        self.ring_bytes = 0
        self.queue = queue
        self.stall_timeout = stall_timeout
        self._sensitive = sensitive
        self._sticky = sticky
        self._held: Held = {}
        self._clock = clock
        self.clients: dict[int, Client] = {}
        self._reserved = 0
        self._ids = itertools.count(1)
        self.ring: deque[_Entry] = deque()
        # self-monitoring
        self.published = 0
        self.serialized_messages = 0
        self.serialized_parts = 0
        self.dropped_ticks = 0
        self.disconnected_slow = 0
        self.refused_full = 0
        self.last_publish_seconds = 0.0
        self.credential_checks = 0
        self.credentials_checked = 0
        self.revoked = 0
        self.last_check_seconds = 0.0

    # -- capacity -----------------------------------------------------------------------------------------
    def reserve(self) -> bool:
        """Claim a place for a client about to be accepted (False when the cap is reached)."""
        if len(self.clients) + self._reserved >= self.max_clients:
            self.refused_full += 1
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved = max(0, self._reserved - 1)

    # -- serialization ------------------------------------------------------------------------------------
    def message(self, entry: _Entry, key: ViewKey) -> bytes:
        """The tick message for one view: assembled once per tick and view for the newest tick."""
        if key[2] and not entry.lean:
            key = (key[0], key[1], False)  # nothing to leave out: the same bytes as the full view
        msg = entry.messages.get(key)
        if msg is None:
            msg = entry.message(key)
            self.serialized_messages += 1
            if self.ring and entry is self.ring[-1]:
                entry.messages[key] = msg
        return msg

    # -- the sink -----------------------------------------------------------------------------------------
    def publish(self, snapshot: Snapshot) -> None:
        """Sampler sink: queue this tick for every client. Never awaits, never blocks on a client."""
        t0 = time.perf_counter()
        entry = _Entry(snapshot, self._sensitive(), self._sticky(), self._held)
        self.serialized_parts += len(entry.parts) + len(entry.lean)
        if self.ring:
            # No longer the newest: backfill rebuilds full ticks from the parts.
            self.ring[-1].messages.clear()
            self.ring[-1].lean.clear()
        self.ring.append(entry)
        self.ring_bytes += entry.size
        horizon = snapshot.monotonic - self.ring_seconds
        while self.ring and (self.ring[0].monotonic < horizon or self.ring_bytes > self.ring_max_bytes):
            self.ring_bytes -= self.ring.popleft().size
        now = self._clock()
        for client in list(self.clients.values()):
            if client.dropped.is_set():
                continue  # on its way out
            if len(client.ticks) == client.ticks.maxlen:
                # The tick about to be dropped may have carried a new sticky value: this one goes in full.
                client.resync()
            msg = self.message(entry, client.key)
            client.primed = True
            if len(client.ticks) == client.ticks.maxlen:
                # Full: the deque drops the oldest on append. A client that stays full is stalled.
                self.dropped_ticks += 1
                client.overflows += 1
                if client.stalled_since is None:
                    client.stalled_since = now
                elif now - client.stalled_since >= self.stall_timeout:
                    self.disconnected_slow += 1
                    client.drop(f"client did not read for {self.stall_timeout:g} s")
            client.ticks.append(msg)
            client.wake.set()
        self.published += 1
        self.last_publish_seconds = time.perf_counter() - t0

    def broadcast(self, message: Mapping[str, Any]) -> None:
        """A control message (e.g. a configuration change) to every client, serialized once."""
        data = orjson.dumps(message)
        for client in self.clients.values():
            self._control(client, data)

    def _control(self, client: Client, data: bytes) -> None:
        # Control messages are few; a client that lets hundreds pile up is as stalled as one with full ticks.
        if len(client.control) > len(self.ring) + 64:
            client.drop("client did not read its control messages")
            return
        client.control.append(data)
        client.wake.set()

    def recent(self, seconds: float) -> list[_Entry]:
        """The ring's ticks of the last ``seconds`` (at most ``ring_seconds``), oldest first."""
        if seconds <= 0 or not self.ring:
            return []
        horizon = self.ring[-1].wall_time - min(seconds, self.ring_seconds)
        return [e for e in self.ring if e.wall_time >= horizon]

    def send_control(self, client: Client, message: Mapping[str, Any]) -> None:
        self._control(client, orjson.dumps(message))

    def backfill(self, client: Client, entries: list[_Entry]) -> None:
        """Queue ``entries`` (from ``recent``) for ``client``, serialized for its view, in full."""
        for entry in entries:
            client.control.append(self.message(entry, (client.admin, client.subs, False)))
        if entries:
            client.primed = True  # the last of them is the newest tick: lean ticks may follow
        client.wake.set()

    # -- one client's life --------------------------------------------------------------------------------
    def attach(
        self,
        *,
        admin: bool,
        username: str,
        subs: frozenset[str] | None,
        session_id: str | None = None,
        token_id: int | None = None,
        lean: bool = False,
    ) -> Client:
        """Register a client whose place was reserved; ticks are queued for it from now on. ``session_id``
        or ``token_id`` names the credential that ``watch_credentials`` keeps checking; ``lean`` asks for
        lean ticks."""
        self.release()
        client = Client(
            next(self._ids),
            admin=admin,
            username=username,
            subs=subs,
            queue=self.queue,
            session_id=session_id,
            token_id=token_id,
            lean=lean,
        )
        self.clients[client.id] = client
        return client

    def detach(self, client: Client) -> None:
        self.clients.pop(client.id, None)

    async def run(
        self,
        ws: WebSocket,
        client: Client,
        on_message: Callable[[Client, Any], Mapping[str, Any] | None],
    ) -> str:
        """Pump ``client``'s queue into ``ws`` and hand its inbound messages to ``on_message`` until one
        side ends; returns why it ended."""
        sender = asyncio.create_task(self._send_loop(ws, client), name=f"ws-send:{client.id}")
        receiver = asyncio.create_task(self._recv_loop(ws, client, on_message), name=f"ws-recv:{client.id}")
        dropped = asyncio.create_task(client.dropped.wait(), name=f"ws-drop:{client.id}")
        reason = "closed"
        try:
            done, _ = await asyncio.wait({sender, receiver, dropped}, return_when=asyncio.FIRST_COMPLETED)
            if dropped in done:
                reason = client.drop_reason
            elif receiver in done and not receiver.cancelled() and receiver.exception() is None:
                reason = receiver.result()
            elif sender in done and not sender.cancelled() and sender.exception() is None:
                reason = "sent all"
            else:
                reason = "connection lost"
        finally:
            self.detach(client)
            for t in (sender, receiver, dropped):
                t.cancel()
            await asyncio.gather(sender, receiver, dropped, return_exceptions=True)
        if client.dropped.is_set() or reason.startswith("inbound"):
            code = 1009 if reason.startswith("inbound message") else client.close_code
            with contextlib.suppress(Exception):
                # A stalled peer may never let the close frame out; do not wait on it for long.
                await asyncio.wait_for(ws.close(code, reason[:120]), 1.0)
        return reason

    async def _send_loop(self, ws: WebSocket, client: Client) -> None:
        while True:
            if client.control:
                msg = client.control.popleft()
            elif client.ticks:
                msg = client.ticks.popleft()
                client.stalled_since = None
            else:
                client.wake.clear()
                await client.wake.wait()
                continue
            await ws.send_bytes(msg)
            client.sent += 1

    async def _recv_loop(
        self, ws: WebSocket, client: Client, on_message: Callable[[Client, Any], Mapping[str, Any] | None]
    ) -> str:
        while True:
            try:
                raw = await ws.receive()
            except WebSocketDisconnect:
                return "client went away"
            if raw["type"] == "websocket.disconnect":
                return "client went away"
            payload: str | bytes | None = raw.get("text")
            if payload is None:
                payload = raw.get("bytes")
            if payload is None:
                continue
            if len(payload) > MAX_INBOUND:
                return f"inbound message over {MAX_INBOUND} bytes"
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self._control(client, orjson.dumps({"type": "error", "message": "messages must be JSON"}))
                continue
            reply = on_message(client, parsed)
            if reply is not None:
                self._control(client, orjson.dumps(reply))

    # -- credentials --------------------------------------------------------------------------------------
    def recheck(self) -> None:
        """Re-validate the open sockets now rather than at the next period (something was just revoked)."""
        self._recheck.set()

    async def revalidate(self, check: CredentialCheck) -> int:
        """One check of every open socket's credential; closes those that ended and returns how many.

        Only the sockets open when the check starts are judged: one attached meanwhile was authenticated
        after the snapshot of ids was taken, and the next check covers it."""
        clients = [
            c
            for c in self.clients.values()
            if not c.dropped.is_set() and (c.session_id is not None or c.token_id is not None)
        ]
        sessions = frozenset(c.session_id for c in clients if c.session_id is not None)
        tokens = frozenset(c.token_id for c in clients if c.token_id is not None)
        if not sessions and not tokens:
            return 0
        t0 = time.perf_counter()
        live_sessions, live_tokens = await run_blocking(check, sessions, tokens)
        self.last_check_seconds = time.perf_counter() - t0
        self.credential_checks += 1
        self.credentials_checked += len(sessions) + len(tokens)
        ended = 0
        for c in clients:
            if c.session_id is not None and c.session_id not in live_sessions:
                c.drop("session ended", SESSION_ENDED)
            elif c.token_id is not None and c.token_id not in live_tokens:
                c.drop("token revoked", SESSION_ENDED)
            else:
                continue
            ended += 1
        self.revoked += ended
        return ended

    async def watch_credentials(self, check: CredentialCheck) -> None:
        """Run ``revalidate`` every ``check_every`` seconds, or sooner after ``recheck``, until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recheck.wait(), self.check_every)
            self._recheck.clear()
            try:
                await self.revalidate(check)
            except Exception:
                # A busy or briefly locked database must not end the watch; the next period retries.
                log.exception("re-validating WebSocket sessions failed")

    def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for client in list(self.clients.values()):
            client.drop(reason, code)

    def stats(self) -> dict[str, Any]:
        return {
            "clients": len(self.clients),
            "max_clients": self.max_clients,
            "published": self.published,
            "serialized_messages": self.serialized_messages,
            "serialized_parts": self.serialized_parts,
            "dropped_ticks": self.dropped_ticks,
            "disconnected_slow": self.disconnected_slow,
            "refused_full": self.refused_full,
            "ring_ticks": len(self.ring),
            "ring_bytes": self.ring_bytes,
            "last_publish_seconds": self.last_publish_seconds,
            "credential_checks": self.credential_checks,
            "credentials_checked": self.credentials_checked,
            "revoked": self.revoked,
            "last_check_seconds": self.last_check_seconds,
        }


def _fallback(value: Any) -> Any:
    """Values orjson does not know (sets, tuples of odd types, Paths) go out as lists or strings."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def ws_state_open(ws: WebSocket) -> bool:
    return ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED
