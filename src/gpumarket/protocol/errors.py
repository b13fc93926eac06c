"""The one error body every coordinator answer outside 2xx carries."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gpumarket.protocol.base import ResponseModel


class FieldError(ResponseModel):
    """One field a request got wrong, and why (in a 422's ``errors``)."""

    field: str = Field(description="dotted path of the field, e.g. resources.gpu.count")
    message: str
    type: str | None = Field(default=None, description="the validator's error type")


class ErrorBody(ResponseModel):
    """What went wrong: one readable line, a stable code the SDK turns back into its exception
    class (see ``gpumarket.errors``), and per-field details where there are any."""

    detail: str = Field(description="one readable line saying what to fix")
    code: str = Field(description="stable machine-readable code, e.g. invalid_request")
    errors: list[FieldError] | dict[str, Any] | None = Field(
        default=None,
        description="a 422's fields with their problems; a contract revert's decoded error",
    )
