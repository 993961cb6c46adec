"""Read-only API tokens for scripts and Prometheus (admins manage them)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from perfpulse.collectors.base import run_blocking
from perfpulse.server.accounts import AccountError
from perfpulse.server.deps import AdminUser, accounts_of, credentials_revoked

router = APIRouter(tags=["tokens"])


class TokenOut(BaseModel):
    id: int
    name: str
    username: str
    scope: str
    created_at: float
    last_used: float | None


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="what the token is for, e.g. 'prometheus'")


class CreatedToken(TokenOut):
    token: str = Field(description="the secret; shown this once, stored only as a hash")


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(request: Request, _: AdminUser) -> list[TokenOut]:
    tokens = await run_blocking(accounts_of(request).list_tokens)
    return [TokenOut(**t.as_dict()) for t in tokens]  # type: ignore[arg-type]


@router.post("/tokens", response_model=CreatedToken, status_code=201)
async def create_token(body: NewToken, request: Request, admin: AdminUser) -> CreatedToken:
    """A new read-only token: use it as ``Authorization: Bearer <token>``."""
    accounts = accounts_of(request)
    try:
        secret, info = await run_blocking(accounts.create_token, admin.user, body.name)
    except AccountError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return CreatedToken(token=secret, **info.as_dict())  # type: ignore[arg-type]


@router.delete("/tokens/{token_id}", status_code=204, responses={404: {"description": "no such token"}})
async def revoke_token(request: Request, _: AdminUser, token_id: int = Path(ge=1, le=2**62)) -> Response:
    if not await run_blocking(accounts_of(request).revoke_token, token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such token")
    credentials_revoked(request)
    return Response(status_code=204)
