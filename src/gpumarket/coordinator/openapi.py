"""The OpenAPI document the coordinator serves, made to describe what it really answers.

FastAPI documents a 422 body shaped like its own validation error (``detail`` as an array) and
no other error status; this coordinator answers every error with one body (:class:`ErrorBody`,
``detail`` a string) and with statuses FastAPI cannot see (auth, state conflicts, limits, rate
limits). A client generated from the document must parse every answer, so the document lists,
for every operation, each error status it can give, all with that one body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gpumarket.coordinator.http.rate_limit import LIMITED_ROUTES
from gpumarket.protocol.errors import ErrorBody

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

_DESCRIPTIONS = {
    "400": "Bad request",
    "401": "Missing or unknown credential",
    "402": "Not enough deposit or stake",
    "403": "The credential may not do this",
    "404": "Not found, or not visible to the caller",
    "408": "The request body stopped arriving",
    "409": "Clashes with the current state",
    "413": "The request body is over its cap",
    "422": "A field is invalid; errors names each",
    "429": "Rate limited; see Retry-After",
    "500": "Internal error (the operator's log has the details)",
    "502": "The settlement backend failed",
    "503": "A dependency (database, chain) is unreachable",
}


def _error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    """Every error status an operation can answer, from what it takes and who may call it."""
    # a bad URL or body, a thing (or a feature: /v1/chain off-chain) that is not there, a
    # dependency down
    statuses = {"400", "404", "422", "500", "503"}
    if operation.get("security") or path == "/metrics" or path.startswith("/v1/auth/"):
        statuses |= {"401", "403"}
    if method in ("post", "put", "patch"):
        statuses |= {"402", "408", "409", "413", "502"}
    if (method.upper(), path) in LIMITED_ROUTES:
        statuses.add("429")
    return statuses


def coordinator_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) the document: FastAPI's, with the error answers made true."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for name, schema in (
        ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        .get("$defs", {})
        .items()
    ):
        schemas[name] = schema
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    error_schema.pop("$defs", None)
    schemas["ErrorBody"] = error_schema
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(_error_statuses(method, path, operation)):
                responses[status] = {
                    "description": _DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": _ERROR_REF}},
                }
            if "429" in responses:
                responses["429"]["headers"] = {
                    "Retry-After": {
                        "description": "seconds to wait before trying again",
                        "schema": {"type": "integer"},
                    }
                }
    app.openapi_schema = document
    return document
