"""FastAPI dependencies: the commit-on-exit session, settings, and who is calling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gpumarket.coordinator.background.pipelines import Pipelines
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services.artifacts import ContentStore
from gpumarket.coordinator.services.auth import Principal, authenticate
from gpumarket.coordinator.services.settlement import SettlementBackend
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import AuthenticationFailed, PermissionDenied
from gpumarket.protocol import Role

_bearer = HTTPBearer(
    auto_error=False, description="API key from /v1/auth/register, or the admin token"
)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent."""
    with session_scope(request.app.state.session_factory) as session:
        yield session


def get_settings(request: Request) -> CoordinatorSettings:
    """The settings the app was created with."""
    settings: CoordinatorSettings = request.app.state.settings
    return settings


def get_settlement(request: Request) -> SettlementBackend:
    """The settlement backend the lifecycle calls at money-moving transitions."""
    backend: SettlementBackend = request.app.state.settlement
    return backend


def get_store(request: Request) -> ContentStore:
    """The outputs store."""
    store: ContentStore = request.app.state.store
    return store


def get_pipelines(request: Request) -> Pipelines:
    """The background pipelines (to wake the matcher)."""
    pipelines: Pipelines = request.app.state.pipelines
    return pipelines


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[CoordinatorSettings, Depends(get_settings)]
SettlementDep = Annotated[SettlementBackend, Depends(get_settlement)]
StoreDep = Annotated[ContentStore, Depends(get_store)]
PipelinesDep = Annotated[Pipelines, Depends(get_pipelines)]


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the bearer token (its own short transaction)."""
    if credentials is None:
        raise AuthenticationFailed(
            "missing credentials: send 'Authorization: Bearer <api key>' (get one from "
            "POST /v1/auth/challenge then /v1/auth/register)"
        )
    settings: CoordinatorSettings = request.app.state.settings
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    with session_scope(request.app.state.session_factory) as session:
        return authenticate(session, credentials.credentials, admin)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_developer(principal: PrincipalDep) -> Principal:
    """Developers only (jobs are paid from a developer's wallet)."""
    if principal.role is not Role.DEVELOPER:
        raise PermissionDenied(
            f"this endpoint is for developers; your key is a {principal.role.value} key"
        )
    return principal


def require_provider(principal: PrincipalDep) -> Principal:
    """Providers only."""
    if principal.role is not Role.PROVIDER:
        raise PermissionDenied(
            f"this endpoint is for providers; your key is a {principal.role.value} key"
        )
    return principal


def require_admin(principal: PrincipalDep) -> Principal:
    """The operator only (the admin token)."""
    if principal.role is not Role.ADMIN:
        raise PermissionDenied("this endpoint needs the admin token")
    return principal


DeveloperDep = Annotated[Principal, Depends(require_developer)]
ProviderDep = Annotated[Principal, Depends(require_provider)]
AdminDep = Annotated[Principal, Depends(require_admin)]
