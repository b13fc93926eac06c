"""Wallet-signature registration and API-key authentication.

A developer or provider proves control of a wallet by signing a one-time challenge (EIP-191
personal_sign, as every wallet can); the coordinator answers with an API key that it stores only
as a SHA-256 hash. Registering again with the same wallet rotates the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import new_id, utcnow
from gpumarket.coordinator.db.models import AuthChallenge, Developer, Provider
from gpumarket.errors import AuthenticationFailed, InvalidRequest
from gpumarket.protocol import Challenge, ChallengeRequest, Credential, RegisterRequest, Role

API_KEY_PREFIX = {Role.DEVELOPER: "gmk_dev_", Role.PROVIDER: "gmk_prv_"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a developer, a provider or the operator."""

    role: Role
    account_id: str
    address: str | None = None


ADMIN = Principal(role=Role.ADMIN, account_id="admin")


def hash_api_key(api_key: str) -> str:
    """The stored form of an API key (keys are high-entropy, so a plain hash suffices)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def challenge_message(address: str, role: Role, challenge_id: str, nonce: str, expires: str) -> str:
    """The human-readable text a wallet signs, in the spirit of Sign-In with Ethereum."""
    return (
        f"gpumarket asks you to sign in as a {role.value}.\n\n"
        f"Address: {address}\nChallenge: {challenge_id}\nNonce: {nonce}\nExpires: {expires}"
    )


def purge_expired_challenges(session: Session) -> int:
    """Delete challenges past their expiry (used or not): they can never be redeemed, and
    anyone may create them, so they must not pile up. Returns how many went."""
    result = session.execute(delete(AuthChallenge).where(AuthChallenge.expires_at < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def issue_challenge(session: Session, request: ChallengeRequest, ttl_seconds: int) -> Challenge:
    """Create a one-time challenge for ``request.address`` (and clear out expired ones, so the
    table holds at most what the sign-in rate limit lets in during one challenge lifetime)."""
    purge_expired_challenges(session)
    challenge_id = new_id("chl")
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    address = request.address.lower()
    message = challenge_message(
        address, request.role, challenge_id, secrets.token_hex(16), expires_at.isoformat()
    )
    session.add(
        AuthChallenge(
            id=challenge_id,
            address=address,
            role=request.role.value,
            message=message,
            expires_at=expires_at,
            used=False,
        )
    )
    return Challenge(challenge_id=challenge_id, message=message, expires_at=expires_at)


def register(session: Session, request: RegisterRequest) -> Credential:
    """Check the signed challenge and return a fresh API key for that wallet and role."""
    challenge = session.get(AuthChallenge, request.challenge_id, with_for_update=True)
    if challenge is None or challenge.used:
        raise AuthenticationFailed("unknown or already used challenge; request a new one")
    if challenge.expires_at < utcnow():
        raise AuthenticationFailed("the challenge has expired; request a new one")
    try:
        signer = Account.recover_message(
            encode_defunct(text=challenge.message), signature=request.signature
        )
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise InvalidRequest(f"the signature cannot be decoded: {exc}") from exc
    if signer.lower() != challenge.address:
        raise AuthenticationFailed(
            f"the signature is by {signer}, not by {challenge.address}; sign with that wallet"
        )
    challenge.used = True
    role = Role(challenge.role)
    api_key = API_KEY_PREFIX[role] + secrets.token_urlsafe(32)
    key_hash = hash_api_key(api_key)
    account_id: str
    if role is Role.DEVELOPER:
        developer = session.scalar(select(Developer).where(Developer.address == challenge.address))
        if developer is None:
            developer = Developer(
                id=new_id("dev"), address=challenge.address, api_key_hash=key_hash
            )
            session.add(developer)
        else:
            developer.api_key_hash = key_hash
        account_id = developer.id
    else:
        provider = session.scalar(select(Provider).where(Provider.address == challenge.address))
        if provider is None:
            provider = Provider(
                id=new_id("prv"),
                address=challenge.address,
                api_key_hash=key_hash,
                region=request.region,
                gpus=[],
                telemetry=[],
            )
            session.add(provider)
        else:
            provider.api_key_hash = key_hash
            if request.region is not None:
                provider.region = request.region
        account_id = provider.id
    return Credential(api_key=api_key, role=role, account_id=account_id, address=challenge.address)


def is_admin_token(token: str, admin_token: str | None) -> bool:
    """Constant-time check of the operator credential (never matches when none is set)."""
    return bool(admin_token) and hmac.compare_digest(token.encode(), (admin_token or "").encode())


class CredentialCache:
    """Recently authenticated API keys (by hash), so a heartbeat does not cost a query.

    Entries live ``ttl_seconds``: a key rotated through another coordinator replica stays
    usable here at most that long; rotation through this process drops it at once. Bans do
    not depend on it (they are checked on the provider row).
    """

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        """The cached principal, or None when absent or stale."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        """Remember a successful authentication."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl, principal)

    def forget_account(self, account_id: str) -> None:
        """Drop every key of an account (after its key was rotated)."""
        stale = [k for k, (_, p) in self._entries.items() if p.account_id == account_id]
        for key in stale:
            self._entries.pop(key, None)


def authenticate(session: Session, api_key: str, admin_token: str | None) -> Principal:
    """Map a bearer token to the principal it belongs to, or raise 401."""
    if is_admin_token(api_key, admin_token):
        return ADMIN
    key_hash = hash_api_key(api_key)
    if api_key.startswith(API_KEY_PREFIX[Role.DEVELOPER]):
        row = session.execute(
            select(Developer.id, Developer.address).where(Developer.api_key_hash == key_hash)
        ).first()
        if row is not None:
            return Principal(Role.DEVELOPER, row.id, row.address)
    elif api_key.startswith(API_KEY_PREFIX[Role.PROVIDER]):
        row = session.execute(
            select(Provider.id, Provider.address).where(Provider.api_key_hash == key_hash)
        ).first()
        if row is not None:
            return Principal(Role.PROVIDER, row.id, row.address)
    if api_key.startswith(tuple(API_KEY_PREFIX.values())):
        raise AuthenticationFailed("the API key is not valid; register again to get a new one")
    # not shaped like an API key: meant as the admin token (an operator's command)
    if not admin_token:
        raise AuthenticationFailed(
            "this is not an API key, and this coordinator has no admin token set "
            "(GPUMARKET_ADMIN_TOKEN when it starts)"
        )
    raise AuthenticationFailed(
        "the admin token is wrong (it is not the coordinator's GPUMARKET_ADMIN_TOKEN), and it "
        "is not an API key either"
    )
