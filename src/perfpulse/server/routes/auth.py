"""Login, logout, password change and first-run setup."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from perfpulse.collectors.base import run_blocking
from perfpulse.server.accounts import MAX_PASSWORD, AccountError, User
from perfpulse.server.deps import OptionalUser, SessionUser, accounts_of, credentials_revoked
from perfpulse.server.security import SESSION_COOKIE, LoginThrottle, SetupGate, client_address

log = logging.getLogger("perfpulse.server")

router = APIRouter(tags=["auth"])

INVALID_LOGIN = "invalid username or password"


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class SetupRequest(BaseModel):
    token: str = Field(
        min_length=1, max_length=256, description="the one-time token from the setup-token file"
    )
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class UserOut(BaseModel):
    username: str
    role: str
    via: str = "session"


class SetupState(BaseModel):
    required: bool


def _secure(request: Request) -> bool:
    return request.url.scheme in ("https", "wss") or bool(request.app.state.settings.tls)


async def start_session(request: Request, response: Response, user: User) -> None:
    """Issue a session cookie: HttpOnly (no script can read it), SameSite=Strict (no other site can make
    the browser send it), Secure whenever the daemon is reached over TLS."""
    settings = request.app.state.settings
    lifetime = float(settings.session_lifetime_seconds)
    accounts = accounts_of(request)
    secret = await run_blocking(lambda: accounts.create_session(user, lifetime=lifetime))
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def _too_many(retry: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail="too many login attempts; try again later",
        headers={"Retry-After": str(max(1, math.ceil(retry)))},
    )


#: argon2 hashes cost ~64 MiB each; a couple at once is plenty.
HASHES_AT_ONCE = 2


async def _verify(request: Request, username: str, password: str) -> User | None:
    state = request.app.state
    gate: asyncio.Semaphore | None = getattr(state, "hashing", None)
    if gate is None:
        gate = state.hashing = asyncio.Semaphore(HASHES_AT_ONCE)
    async with gate:
        return await run_blocking(accounts_of(request).verify_password, username, password)


@router.post(
    "/auth/login",
    response_model=UserOut,
    responses={401: {"description": INVALID_LOGIN}, 429: {"description": "too many attempts"}},
)
async def login(body: LoginRequest, request: Request, response: Response) -> UserOut:
    """Start a browser session. Unknown user and wrong password get the same answer in about the same
    time; failures are limited per client address and per username."""
    throttle: LoginThrottle = request.app.state.throttle
    client = client_address(request.client.host if request.client else None)
    wait = throttle.retry_after(client, body.username)
    if wait is not None:
        raise _too_many(wait)
    throttle.attempt(client)
    user = await _verify(request, body.username, body.password)
    if user is None:
        throttle.failed(client, body.username)
        log.info("failed login from %s", client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_LOGIN)
    throttle.succeeded(body.username)
    await start_session(request, response, user)
    log.info("user %s logged in from %s", user.username, client)
    return UserOut(username=user.username, role=user.role)


@router.post("/auth/logout", status_code=204, responses={204: {"description": "logged out"}})
async def logout(request: Request, user: OptionalUser) -> Response:
    """End this browser session (it is deleted server-side: the cookie is worthless afterwards)."""
    if user is not None and user.session_id is not None:
        sid = user.session_id
        await run_blocking(accounts_of(request).revoke_session, sid)
        credentials_revoked(request)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


@router.get("/auth/me", response_model=UserOut, responses={401: {"description": "not authenticated"}})
async def me(user: OptionalUser) -> UserOut:
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not authenticated")
    return UserOut(username=user.username, role=user.role, via=user.via)


@router.post(
    "/auth/password",
    response_model=UserOut,
    responses={401: {"description": "current password wrong"}, 422: {"description": "new password rejected"}},
)
async def change_password(
    body: PasswordChange, request: Request, response: Response, user: SessionUser
) -> UserOut:
    """Change one's own password. Every session of the user ends, this one is replaced by a new one."""
    throttle: LoginThrottle = request.app.state.throttle
    client = client_address(request.client.host if request.client else None)
    wait = throttle.retry_after(client, user.username)
    if wait is not None:
        raise _too_many(wait)
    accounts = accounts_of(request)
    if await _verify(request, user.username, body.current_password) is None:
        throttle.failed(client, user.username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="current password is wrong")
    try:
        fresh = await run_blocking(accounts.set_password, user.username, body.new_password)
    except AccountError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    credentials_revoked(request)
    await start_session(request, response, fresh)
    return UserOut(username=fresh.username, role=fresh.role)


@router.get("/setup", response_model=SetupState)
async def setup_state(request: Request) -> SetupState:
    """Whether the first admin still has to be created."""
    gate: SetupGate = request.app.state.setup
    return SetupState(required=gate.is_open)


@router.post(
    "/setup",
    response_model=UserOut,
    status_code=201,
    responses={
        403: {"description": "wrong setup token"},
        409: {"description": "setup is closed: an admin exists"},
        422: {"description": "username or password rejected"},
        429: {"description": "too many attempts"},
    },
)
async def setup(body: SetupRequest, request: Request, response: Response) -> Any:
    """Create the first admin with the one-time token printed at first start (also in the data directory's
    setup-token file). Closed for good once an admin exists."""
    gate: SetupGate = request.app.state.setup
    accounts = accounts_of(request)
    if not gate.is_open or await run_blocking(accounts.has_admin):
        gate.close()
        raise HTTPException(status.HTTP_409_CONFLICT, detail="setup is closed: an admin account exists")
    throttle: LoginThrottle = request.app.state.throttle
    client = client_address(request.client.host if request.client else None)
    wait = throttle.retry_after(client, "\x00setup")
    if wait is not None:
        raise _too_many(wait)
    throttle.attempt(client)
    if not gate.check(body.token):
        throttle.failed(client, "\x00setup")
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="wrong setup token")
    try:
        user = await run_blocking(accounts.add_user, body.username, body.password, "admin")
    except AccountError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    gate.close()
    log.info("first admin %s created; setup closed", user.username)
    await start_session(request, response, user)
    return UserOut(username=user.username, role=user.role)
