"""The project's one exception tree.

Every error a user can see carries a stable machine-readable ``code`` and the HTTP status the
coordinator answers with, so the coordinator, the SDK and the CLI agree on what went wrong
without parsing messages. The SDK turns an HTTP error body back into the same class: every
class that declares its own ``code`` registers itself in :data:`ERRORS_BY_CODE` when it is
defined (here or in another module), so no hand-kept list can forget one.

No class here shares its name with an exception of SQLAlchemy or httpx, which the same modules
often import (``Unreachable``, not ``TransportError``; ``IntegrityCheckFailed``, not
``IntegrityError``; ``InternalServerError``, not ``InternalError``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

ERRORS_BY_CODE: dict[str, type[GpumarketError]] = {}
"""Every error class by its wire ``code``; filled by :meth:`GpumarketError.__init_subclass__`."""


class GpumarketError(Exception):
    """Base of every error gpumarket raises on purpose; ``message`` says what to fix."""

    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register the new class under its own ``code`` so that :func:`error_from_response`
        rebuilds it. A subclass that only inherits its parent's code is not registered (it
        would come back as the parent); two classes declaring one code are a bug, refused."""
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return
        taken = ERRORS_BY_CODE.get(cls.code)
        same = taken is not None and (taken.__module__, taken.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )  # the same class again: its module was reloaded
        if taken is not None and not same:
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__} declares error code {cls.code!r}, "
                f"which {taken.__module__}.{taken.__qualname__} already has"
            )
        ERRORS_BY_CODE[cls.code] = cls

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @classmethod
    def from_body(cls, message: str, details: Any) -> Self:
        """Rebuild the error from an error body's ``detail`` and ``errors`` (the SDK's side of
        :meth:`to_dict`); a class whose constructor takes other arguments overrides it."""
        return cls(message, details=details)

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body the coordinator sends and the SDK parses."""
        body: dict[str, Any] = {"detail": self.message, "code": self.code}
        if self.details is not None:
            body["errors"] = self.details
        return body


ERRORS_BY_CODE[GpumarketError.code] = GpumarketError  # the base: a body with the plain code


class InvalidRequest(GpumarketError):
    """The request is well-formed JSON but asks for something impossible or malformed."""

    code = "invalid_request"
    status_code = 422


class AuthenticationFailed(GpumarketError):
    """No credential, or one the coordinator does not know."""

    code = "unauthenticated"
    status_code = 401


class PermissionDenied(GpumarketError):
    """A valid credential that may not do this (wrong role, someone else's job, banned)."""

    code = "forbidden"
    status_code = 403


class NotFound(GpumarketError):
    """The named job, provider or artifact does not exist (or is not visible to the caller)."""

    code = "not_found"
    status_code = 404


class Conflict(GpumarketError):
    """The request clashes with the current state (for instance a job already finished)."""

    code = "conflict"
    status_code = 409


class InvalidTransition(Conflict):
    """A job lifecycle transition that the state machine does not allow from its state."""

    code = "invalid_transition"


class LimitExceeded(GpumarketError):
    """An upload, log or request body is over its configured cap."""

    code = "limit_exceeded"
    status_code = 413


class IntegrityCheckFailed(GpumarketError):
    """Uploaded or downloaded content does not match the hash its sender declared, or an
    archive is not what it claims to be (the wire code stays ``integrity_error``)."""

    code = "integrity_error"
    status_code = 422


class PaymentRequired(GpumarketError):
    """The money is not there: a deposit too small for the escrow, or a stake under the minimum."""

    code = "payment_required"
    status_code = 402


class SettlementError(GpumarketError):
    """The settlement backend refused or failed an escrow operation."""

    code = "settlement_error"
    status_code = 502


class ContractReverted(SettlementError):
    """A contract call reverted; ``error`` is the Solidity custom error's name and ``args`` its
    decoded arguments (empty name when the revert carried no known error)."""

    code = "contract_reverted"
    status_code = 409

    def __init__(self, error: str, args: tuple[object, ...] = (), *, raw: str = "") -> None:
        shown = ", ".join(str(a) for a in args)
        super().__init__(
            f"contract reverted: {error or 'unknown error'}({shown})",
            details={"error": error, "args": [str(a) for a in args], "raw": raw},
        )
        self.error = error
        self.args_ = args

    @classmethod
    def from_body(cls, message: str, details: Any) -> Self:
        """Rebuild the revert from the decoded error the body's ``errors`` carries."""
        known = details if isinstance(details, dict) else {}
        raw_args = known.get("args")
        rebuilt = cls(
            str(known.get("error") or ""),
            tuple(raw_args) if isinstance(raw_args, list) else (),
            raw=str(known.get("raw") or ""),
        )
        rebuilt.message = message
        rebuilt.args = (message,)
        if details is not None:
            rebuilt.details = details
        return rebuilt


class RequestTimeout(GpumarketError):
    """The client stopped sending its request body before it was complete."""

    code = "request_timeout"
    status_code = 408


class RateLimited(GpumarketError):
    """Too many requests of one kind from one client; ``retry_after`` says when to try again."""

    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, *, details: Any = None, retry_after: int = 1) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class WaitTimedOut(GpumarketError):
    """A job did not reach the awaited state in time (the job itself is untouched)."""

    code = "wait_timed_out"
    status_code = 504


class Unreachable(GpumarketError):
    """The coordinator (or the chain) could not be reached or answered garbage; usually worth
    a retry (the wire code stays ``transport_error``)."""

    code = "transport_error"
    status_code = 503


class ServiceUnavailable(Unreachable):
    """The coordinator answers, but something it depends on (the chain's RPC endpoint) does
    not, for now: the request is worth repeating later (a 503, like the coordinator's own
    outages, so retry loops treat both alike)."""

    code = "service_unavailable"
    status_code = 503


class InternalServerError(GpumarketError):
    """The coordinator failed on a bug or an outage of its own (HTTP 500, code ``internal``);
    its operator's log has the traceback. Not an :class:`Unreachable`: the SDK raises it at
    once rather than repeating a request that fails the same way every time."""

    code = "internal"
    status_code = 500


class ConfigurationError(GpumarketError):
    """A server's own settings are wrong (a missing or invalid ``GPUMARKET_*`` variable, an
    unreadable deployment file, a malformed key): raised at start-up, for the operator to fix.
    It is no client's fault, so never a 4xx; should one escape into a request it is a 500."""

    code = "configuration_error"
    status_code = 500


ERRORS_BY_STATUS: dict[int, type[GpumarketError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    402: PaymentRequired,
    403: PermissionDenied,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: LimitExceeded,
    422: InvalidRequest,
    429: RateLimited,
    500: InternalServerError,
}
"""The class an answer without a known ``code`` (a proxy's, the framework's) is rebuilt as; any
other 5xx is :class:`Unreachable` (a gateway or an outage: worth a retry)."""


def error_from_response(status_code: int, body: Any) -> GpumarketError:
    """Rebuild the typed error a coordinator response describes (used by the SDK)."""
    message = f"HTTP {status_code}"
    code = None
    details = None
    if isinstance(body, dict):
        raw = body.get("detail")
        message = raw if isinstance(raw, str) else (str(raw) if raw else message)
        code = body.get("code")
        details = body.get("errors")
    known = ERRORS_BY_CODE.get(code) if isinstance(code, str) else None
    cls = known or ERRORS_BY_STATUS.get(status_code)
    if cls is None:
        cls = Unreachable if status_code >= 500 else GpumarketError
    return cls.from_body(message, details)
