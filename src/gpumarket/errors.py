"""The project's one exception tree.

Every error a user can see carries a stable machine-readable ``code`` and the HTTP status the
coordinator answers with, so the coordinator, the SDK and the CLI agree on what went wrong
without parsing messages. The SDK turns an HTTP error body back into the same class.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GpumarketError(Exception):
    """Base of every error gpumarket raises on purpose; ``message`` says what to fix."""

    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body the coordinator sends and the SDK parses."""
        body: dict[str, Any] = {"detail": self.message, "code": self.code}
        if self.details is not None:
            body["errors"] = self.details
        return body


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


class IntegrityError(GpumarketError):
    """Uploaded content does not match the hash the sender declared."""

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


class TransportError(GpumarketError):
    """The coordinator could not be reached or answered garbage; usually worth a retry."""

    code = "transport_error"
    status_code = 503


class ServiceUnavailable(TransportError):
    """The coordinator answers, but something it depends on (the chain's RPC endpoint) does
    not, for now: the request is worth repeating later (a 503, like the coordinator's own
    outages, so retry loops treat both alike)."""

    code = "service_unavailable"
    status_code = 503


ERRORS_BY_CODE: dict[str, type[GpumarketError]] = {
    cls.code: cls
    for cls in (
        GpumarketError,
        InvalidRequest,
        AuthenticationFailed,
        WaitTimedOut,
        RequestTimeout,
        RateLimited,
        PermissionDenied,
        NotFound,
        Conflict,
        InvalidTransition,
        LimitExceeded,
        IntegrityError,
        PaymentRequired,
        SettlementError,
        ContractReverted,
        TransportError,
        ServiceUnavailable,
    )
}

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
}


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
    cls = ERRORS_BY_CODE.get(code or "") or ERRORS_BY_STATUS.get(status_code)
    if cls is None:
        cls = TransportError if status_code >= 500 else GpumarketError
    return cls(message, details=details)
