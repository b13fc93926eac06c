"""JobSpec validation: strict input with messages that name the field and the fix."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from gpumarket.protocol import GpuRequirement, JobSpec, normalize_gpu_model


def spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"image": "python:3.12-slim", "max_price_per_hour": "1.5", **fields}
    )


def errors_of(**fields: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        spec(**fields)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in info.value.errors()}


def test_defaults_are_a_cpu_job() -> None:
    job = spec()
    assert job.resources.gpu is None and job.resources.gpu_count == 0
    assert job.network is False and job.output_path == "/outputs"
    assert job.max_price_per_hour == Decimal("1.5")


def test_gpu_shorthand() -> None:
    gpu = spec(resources={"gpu": "RTX4090,A100:40GB..:2"}).resources.gpu
    assert gpu is not None
    assert gpu.models == ["A100", "RTX4090"] and gpu.count == 2
    assert gpu.vram is not None and gpu.vram.min_mb is not None and gpu.vram.min_mb < 40 * 1024
    assert GpuRequirement.model_validate("A100:2").count == 2
    assert GpuRequirement.model_validate("24GB..").models == []
    assert GpuRequirement.model_validate(4).count == 4


@pytest.mark.parametrize(
    ("fields", "where", "says"),
    [
        ({"image": ""}, "image", "at least 1 character"),
        ({"image": "has space"}, "image", "not an image reference"),
        ({"resources": {"gpu": {"count": -1}}}, "resources.gpu.count", "greater than or equal"),
        ({"resources": {"gpu": {"vram": "24XB.."}}}, "resources.gpu.vram", "not a size"),
        ({"resources": {"gpu": "a:b:c:d"}}, "resources.gpu", "MODEL:VRAM:COUNT"),
        ({"resources": {"memory": "lots"}}, "resources.memory", "not a size"),
        ({"resources": {"cpu": 0}}, "resources.cpu", "greater than 0"),
        ({"colour": "blue"}, "colour", "Extra inputs"),
        ({"max_price_per_hour": "-1"}, "max_price_per_hour", "greater than or equal"),
        ({"max_price_per_hour": "0.0000001"}, "max_price_per_hour", "decimal places"),
        ({"env": {"1BAD": "x"}}, "env", "invalid environment variable"),
        ({"working_dir": "relative"}, "working_dir", "absolute"),
        ({"inputs": [{"path": "../etc/passwd", "content": "x"}]}, "inputs.0.path", "relative"),
        ({"inputs": [{"path": "a"}]}, "inputs.0", "exactly one"),
        ({"inputs": [{"path": "a", "content_base64": "!!"}]}, "inputs.0", "base64"),
        ({"max_duration_seconds": 0}, "max_duration_seconds", "greater than or equal"),
    ],
)
def test_bad_specs_name_the_field(fields: dict[str, Any], where: str, says: str) -> None:
    errors = errors_of(**fields)
    assert where in errors, errors
    assert says in errors[where]


def test_inline_inputs_are_capped() -> None:
    big = "x" * (600 * 1024)
    errors = errors_of(inputs=[{"path": "a", "content": big}, {"path": "b", "content": big}])
    assert "byte cap" in errors[""]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("rtx4090", "RTX4090"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("Tesla T4", "T4"),
        ("NVIDIA RTX A6000", "RTXA6000"),
        ("NVIDIA L40S", "L40S"),
    ],
)
def test_model_names_normalise(name: str, model: str) -> None:
    assert normalize_gpu_model(name) == model
