"""FastAPI dependencies: who is asking, and may they.

Route modules declare access with these and nothing else::

    router = APIRouter(dependencies=[Depends(require_viewer)])      # every route of the module

    @router.put("/thing")
    async def change(user: AdminUser) -> ...: ...                   # one route, with the principal

A request is authenticated by the session cookie (browsers) or by ``Authorization: Bearer <token>`` (scripts,
Prometheus). API tokens are read-only: they act as viewers whatever their owner's role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, status
from starlette.requests import HTTPConnection

from perfpulse.collectors.base import run_blocking
from perfpulse.server.accounts import AccountStore, Role, User
from perfpulse.server.security import SESSION_COOKIE


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    via: Literal["session", "token"]
    session_id: str | None = None
    token_id: int | None = None

    @property
    def role(self) -> Role:
        return self.user.role if self.via == "session" else "viewer"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def username(self) -> str:
        return self.user.username


def accounts_of(conn: HTTPConnection) -> AccountStore:
    store: AccountStore = conn.app.state.accounts
    return store


async def authenticate(conn: HTTPConnection) -> Principal | None:
    """The principal behind a request or WebSocket handshake, or None.

    A malformed, unknown, expired or revoked credential gives None, never an error: the caller answers 401
    the same way for all of them.
    """
    accounts = accounts_of(conn)
    auth = conn.headers.get("authorization")
    if auth is not None:
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return None
        found = await run_blocking(accounts.lookup_token, credential.strip())
        if found is None:
            return None
        return Principal(found[0], "token", token_id=found[1])
    cookie = conn.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    idle = float(conn.app.state.settings.session_idle_seconds)
    session = await run_blocking(lambda: accounts.lookup_session(cookie, idle=idle))
    if session is None:
        return None
    return Principal(session[0], "session", session_id=session[1])


def credentials_revoked(conn: HTTPConnection) -> None:
    """Tell the WebSocket hub that sessions or tokens were just revoked, so that sockets opened with them
    close now instead of at the hub's next periodic check."""
    hub = getattr(conn.app.state, "hub", None)
    if hub is not None:
        hub.recheck()


async def optional_user(conn: HTTPConnection) -> Principal | None:
    return await authenticate(conn)


def _unauthenticated() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail="not authenticated", headers={"WWW-Authenticate": "Bearer"}
    )


async def require_viewer(principal: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    """Any authenticated principal: a viewer or admin session, or an API token."""
    if principal is None:
        raise _unauthenticated()
    return principal


async def require_admin(principal: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    """An admin's browser session; API tokens are read-only and never pass."""
    if principal is None:
        raise _unauthenticated()
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs an admin session")
    return principal


async def require_session(principal: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    """A logged-in user (any role) acting through their own session, not a token."""
    if principal is None:
        raise _unauthenticated()
    if principal.via != "session":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="API tokens are read-only")
    return principal


#: The authenticated principal (viewer or admin, session or token).
CurrentUser = Annotated[Principal, Depends(require_viewer)]
ViewerUser = CurrentUser
#: An admin session.
AdminUser = Annotated[Principal, Depends(require_admin)]
#: Any user's own session.
SessionUser = Annotated[Principal, Depends(require_session)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]
