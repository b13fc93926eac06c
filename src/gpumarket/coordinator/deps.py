"""FastAPI dependencies: the commit-on-exit session, settings, and who is calling.

Dependencies that only look things up are ``async def`` on purpose: FastAPI runs every sync
dependency in the thread pool, and those hops cost more than the lookups themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from gpumarket.coordinator.background.notifier import Notifier
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services.artifacts import ContentStore
from gpumarket.coordinator.services.auth import (
    ADMIN,
    CredentialCache,
    Principal,
    authenticate,
    hash_api_key,
    is_admin_token,
)
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import AuthenticationFailed, PermissionDenied
from gpumarket.protocol import Role

bearer_scheme = HTTPBearer(
    auto_error=False, description="API key from /v1/auth/register, or the admin token"
)


async def _scoped(factory: sessionmaker[Session]) -> AsyncIterator[Session]:
    # The same unit of work as every background loop (``session_scope``), opened on the event
    # loop (creating a Session touches no database) and closed in one worker-thread hop once
    # the endpoint has returned: commit on success, roll back on any error.
    scope = session_scope(factory)
    session = scope.__enter__()
    try:
        yield session
    except BaseException as exc:
        await run_in_threadpool(scope.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await run_in_threadpool(scope.__exit__, None, None, None)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request, committed before the response is sent."""
    async for session in _scoped(request.app.state.session_factory):
        yield session


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A transaction for requests that only read (no writer lock on SQLite)."""
    async for session in _scoped(request.app.state.read_session_factory):
        yield session


async def get_settings(request: Request) -> CoordinatorSettings:
    """The settings the app was created with."""
    settings: CoordinatorSettings = request.app.state.settings
    return settings


async def get_settlement(request: Request) -> SettlementBackend:
    """The settlement backend chosen when the app was built: every money step goes to it."""
    backend: SettlementBackend = request.app.state.settlement
    return backend


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """For endpoints that must not hold a transaction open while they wait on the chain."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


async def get_store(request: Request) -> ContentStore:
    """The outputs store."""
    store: ContentStore = request.app.state.store
    return store


async def get_notifier(request: Request) -> Notifier:
    """The in-process notifier (wakes long-polls, log followers, the matcher)."""
    notifier: Notifier = request.app.state.notifier
    return notifier


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
SettingsDep = Annotated[CoordinatorSettings, Depends(get_settings)]
SettlementDep = Annotated[SettlementBackend, Depends(get_settlement)]
StoreDep = Annotated[ContentStore, Depends(get_store)]
FactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """Authenticate the bearer token: the admin token by constant-time comparison, API keys
    from the in-process cache or, on a miss, a short read-only transaction of their own (so
    the request's write transaction, and on SQLite the writer lock, starts only after it)."""
    if credentials is None:
        raise AuthenticationFailed(
            "missing credentials: send 'Authorization: Bearer <api key>' (get one from "
            "POST /v1/auth/challenge then /v1/auth/register)"
        )
    settings: CoordinatorSettings = request.app.state.settings
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    token = credentials.credentials
    if is_admin_token(token, admin):
        return ADMIN
    cache: CredentialCache = request.app.state.credentials
    key_hash = hash_api_key(token)
    principal = cache.get(key_hash)
    if principal is None:

        def lookup() -> Principal:
            with session_scope(request.app.state.read_session_factory) as session:
                return authenticate(session, token, admin)

        principal = await run_in_threadpool(lookup)
        cache.put(key_hash, principal)
    return principal


def _check_role(principal: Principal, role: Role, label: str) -> Principal:
    if principal.role is not role:
        if role is Role.ADMIN:
            raise PermissionDenied("this endpoint needs the admin token")
        raise PermissionDenied(
            f"this endpoint is for {label}; your key is a {principal.role.value} key"
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_developer(principal: PrincipalDep) -> Principal:
    """Developers only (jobs are paid from a developer's wallet)."""
    return _check_role(principal, Role.DEVELOPER, "developers")


async def require_provider(principal: PrincipalDep) -> Principal:
    """Providers only."""
    return _check_role(principal, Role.PROVIDER, "providers")


async def require_admin(principal: PrincipalDep) -> Principal:
    """The operator only (the admin token)."""
    return _check_role(principal, Role.ADMIN, "the operator")


DeveloperDep = Annotated[Principal, Depends(require_developer)]
ProviderDep = Annotated[Principal, Depends(require_provider)]
AdminDep = Annotated[Principal, Depends(require_admin)]
