"""User administration (admins only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from perfpulse.collectors.base import run_blocking
from perfpulse.server.accounts import MAX_PASSWORD, AccountError, LastAdmin, NoSuchUser, UserExists
from perfpulse.server.deps import accounts_of, credentials_revoked, require_admin

router = APIRouter(tags=["users"], dependencies=[Depends(require_admin)])

Username = Path(min_length=1, max_length=64)


class UserOut(BaseModel):
    username: str
    role: str
    created_at: float


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    role: Literal["admin", "viewer"] = "viewer"


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "viewer"] | None = None
    password: str | None = Field(default=None, min_length=1, max_length=MAX_PASSWORD)


def account_error(exc: AccountError) -> HTTPException:
    if isinstance(exc, NoSuchUser):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))
    if isinstance(exc, UserExists | LastAdmin):
        return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))


_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "no such user"},
    409: {"description": "conflict (exists, or the last admin)"},
}


@router.get("/users", response_model=list[UserOut])
async def list_users(request: Request) -> list[UserOut]:
    users = await run_blocking(accounts_of(request).list_users)
    return [UserOut(username=u.username, role=u.role, created_at=u.created_at) for u in users]


@router.post("/users", response_model=UserOut, status_code=201, responses=_ERRORS)
async def add_user(body: NewUser, request: Request) -> UserOut:
    try:
        u = await run_blocking(accounts_of(request).add_user, body.username, body.password, body.role)
    except AccountError as exc:
        raise account_error(exc) from None
    return UserOut(username=u.username, role=u.role, created_at=u.created_at)


@router.patch("/users/{username}", response_model=UserOut, responses=_ERRORS)
async def change_user(body: UserChange, request: Request, username: str = Username) -> UserOut:
    """Change a user's role or password; either change ends the user's sessions."""
    accounts = accounts_of(request)
    try:
        user = await run_blocking(accounts.get_user, username)
        if user is None:
            raise NoSuchUser(f"no user {username!r}")
        if body.password is not None:
            user = await run_blocking(accounts.set_password, username, body.password)
        if body.role is not None:
            user = await run_blocking(accounts.set_role, username, body.role)
    except AccountError as exc:
        raise account_error(exc) from None
    finally:
        # Even a failed role change may follow a password change that already ended sessions.
        credentials_revoked(request)
    return UserOut(username=user.username, role=user.role, created_at=user.created_at)


@router.delete("/users/{username}", status_code=204, responses=_ERRORS)
async def remove_user(request: Request, username: str = Username) -> Response:
    try:
        await run_blocking(accounts_of(request).remove_user, username)
    except AccountError as exc:
        raise account_error(exc) from None
    credentials_revoked(request)
    return Response(status_code=204)
