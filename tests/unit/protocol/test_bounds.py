"""Every wire model refuses what no database column can hold, naming the field and the bound."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gpumarket.protocol import (
    ChallengeRequest,
    FailureReport,
    Heartbeat,
    JobSpec,
    LogAppend,
    PreparationProgress,
    ResultReport,
)
from gpumarket.protocol.base import WireModel
from gpumarket.protocol.jobs import MAX_COMMAND_ENV_BYTES
from tests.helpers import RTX4090, gpus, heartbeat

SPEC = {"image": "python:3.12-slim", "max_price_per_hour": "1"}


def _refused(model: type[BaseModel], data: Any) -> tuple[str, str]:
    """The (field, message) of the first error; fails when the data is accepted."""
    with pytest.raises(ValidationError) as caught:
        if isinstance(data, str):
            model.model_validate_json(data)
        else:
            model.model_validate(data)
    error = caught.value.errors()[0]
    return ".".join(str(p) for p in error["loc"]), error["msg"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**SPEC, "name": "a\x00b"}, "name"),
        ({**SPEC, "env": {"A": "b\x00"}}, "env"),
        ({**SPEC, "command": ["echo", "\x00"]}, "command"),
        ({**SPEC, "region": "eu\x00"}, "region"),
        ({**SPEC, "inputs": [{"path": "a", "content": "x\x00"}]}, "inputs.0.content"),
    ],
)
def test_a_nul_in_any_text_is_refused_where_it_sits(data: dict[str, Any], field: str) -> None:
    where, message = _refused(JobSpec, data)
    assert where == field and "NUL" in message


def test_nul_is_refused_in_every_kind_of_wire_model() -> None:
    assert "NUL" in _refused(FailureReport, {"reason": "no\x00"})[1]
    assert "NUL" in _refused(LogAppend, {"chunks": [{"seq": 0, "data": "a\x00"}]})[1]
    assert "NUL" in _refused(PreparationProgress, {"detail": "\x00"})[1]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"exit_code": 0, "usage_seconds": Infinity}', "usage_seconds"),
        ('{"exit_code": 0, "usage_seconds": NaN}', "usage_seconds"),
        ('{"exit_code": 0, "usage_seconds": 1e400}', "usage_seconds"),
        ('{"exit_code": 1267650600228229401496703205376, "usage_seconds": 1}', "exit_code"),
        ('{"exit_code": 2147483648, "usage_seconds": 1}', "exit_code"),
        ('{"exit_code": 0, "usage_seconds": 1, "output_size": 1e30}', "output_size"),
    ],
)
def test_result_numbers_must_fit_their_columns(raw: str, field: str) -> None:
    assert _refused(ResultReport, raw)[0] == field
    # the coordinator's own parser (json.loads) lets Infinity through; the model does not
    assert _refused(ResultReport, json.loads(raw))[0] == field


def test_log_seq_fits_an_integer_column() -> None:
    where, message = _refused(LogAppend, {"chunks": [{"seq": 2**63, "data": "x"}]})
    assert where == "chunks.0.seq" and "2147483647" in message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**SPEC, "resources": {"memory": "99999999999999999999TB"}}, "resources.memory"),
        ({**SPEC, "resources": {"disk": "1" * 40 + "GB"}}, "resources.disk"),
        ({**SPEC, "resources": {"gpu": {"min_tflops": 1e308}}}, "resources.gpu.min_tflops"),
        ({**SPEC, "resources": {"gpu": {"vram": 2**64}}}, "resources.gpu.vram"),
        ({**SPEC, "max_price_per_hour": "1e400"}, "max_price_per_hour"),
        ({**SPEC, "max_price_per_hour": "1000000.000001"}, "max_price_per_hour"),
        ({**SPEC, "env": {"BIG": "x" * (32 * 1024 + 1)}}, "env.BIG"),
        ({**SPEC, "env": {f"V{i}": "x" for i in range(300)}}, "env"),
        ({**SPEC, "command": ["x" * (32 * 1024 + 1)]}, "command.0"),
    ],
)
def test_absurd_specs_are_refused_by_field(spec: dict[str, Any], field: str) -> None:
    assert _refused(JobSpec, spec)[0] == field


def test_command_and_env_together_are_capped() -> None:
    args = ["x" * 30_000] * 10  # each argument fits, together they do not
    _, message = _refused(JobSpec, {**SPEC, "command": args})
    assert str(MAX_COMMAND_ENV_BYTES) in message


def test_the_largest_escrow_a_spec_allows_fits_bigint() -> None:
    spec = JobSpec.model_validate(
        {
            **SPEC,
            "max_price_per_hour": "1000000",
            "max_duration_seconds": 7 * 24 * 3600,
            "resources": {"gpu": {"count": 64}},
        }
    )
    micros = int(spec.max_price_per_hour * 1_000_000) * 7 * 24 * 64
    assert micros < 2**63


def test_heartbeat_fields_are_bounded() -> None:
    good = heartbeat(gpus(RTX4090, 1), {"RTX4090": "0.5"}).model_dump(mode="json")
    Heartbeat.model_validate(good)
    driver = json.loads(json.dumps(good))
    driver["gpus"][0]["driver_version"] = "5" * 1_000_000
    assert _refused(Heartbeat, driver)[0] == "gpus.0.driver_version"
    memory = json.loads(json.dumps(good))
    memory["resources"]["memory_mb"] = 2**64
    assert _refused(Heartbeat, memory)[0] == "resources.memory_mb"
    price = json.loads(json.dumps(good))
    price["offers"][0]["price_per_hour"] = "1e400"
    assert _refused(Heartbeat, price)[0] == "offers.0.price_per_hour"


def test_every_wire_model_inherits_the_storable_check() -> None:
    """A model added later gets the NUL and BIGINT checks without doing anything."""

    class Later(WireModel):
        note: str
        count: int

    assert "NUL" in _refused(Later, {"note": "\x00", "count": 1})[1]
    assert _refused(Later, {"note": "ok", "count": 2**64})[0] == "count"
    assert _refused(ChallengeRequest, {"address": "0x" + "a" * 40 + "\x00", "role": "developer"})
