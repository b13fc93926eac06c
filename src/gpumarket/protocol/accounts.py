"""Wallet-signature registration: the coordinator issues a challenge, the wallet signs it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from gpumarket.protocol.base import ResponseModel, WireModel

_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"


class Role(StrEnum):
    """Who a credential belongs to."""

    DEVELOPER = "developer"
    PROVIDER = "provider"
    ADMIN = "admin"


class ChallengeRequest(WireModel):
    """Ask for a message to sign with the wallet at ``address``."""

    address: str = Field(pattern=_ADDRESS_PATTERN)
    role: Role

    @field_validator("role")
    @classmethod
    def _no_admin(cls, role: Role) -> Role:
        if role is Role.ADMIN:
            raise ValueError("admins use the admin token; register as developer or provider")
        return role


class Challenge(ResponseModel):
    """A one-time message to sign (EIP-191 personal_sign) before it expires."""

    challenge_id: str
    message: str
    expires_at: datetime


class RegisterRequest(WireModel):
    """Prove control of the wallet by returning the signed challenge."""

    challenge_id: str = Field(min_length=1, max_length=64)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")
    region: str | None = Field(default=None, max_length=64, description="providers only")


class Credential(ResponseModel):
    """The API key to send as ``Authorization: Bearer ...``; shown once, stored hashed."""

    api_key: str
    role: Role
    account_id: str
    address: str
