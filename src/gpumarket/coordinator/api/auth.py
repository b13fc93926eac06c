"""Registration by wallet signature."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gpumarket.coordinator.deps import SessionDep, SettingsDep
from gpumarket.coordinator.services import auth
from gpumarket.protocol import Challenge, ChallengeRequest, Credential, RegisterRequest

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/challenge", response_model=Challenge, status_code=201)
def create_challenge(
    body: ChallengeRequest, session: SessionDep, settings: SettingsDep
) -> Challenge:
    """Get a one-time message to sign with your wallet (EIP-191 personal_sign)."""
    return auth.issue_challenge(session, body, settings.challenge_ttl_seconds)


@router.post("/register", response_model=Credential, status_code=201)
def register(body: RegisterRequest, session: SessionDep, request: Request) -> Credential:
    """Return the signed challenge; get an API key for that wallet (a new one each time)."""
    credential = auth.register(session, body)
    request.app.state.credentials.forget_account(credential.account_id)
    return credential
