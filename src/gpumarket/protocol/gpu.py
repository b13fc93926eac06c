"""What a GPU is, as NVML reports it, and how model names are normalised for matching."""

from __future__ import annotations

import re

from pydantic import Field

from gpumarket.protocol.base import MAX_SIZE_MB, MAX_TFLOPS, WireModel

_VENDOR_WORDS = {"NVIDIA", "GEFORCE", "TESLA", "QUADRO", "AMD", "RADEON"}
_VARIANT_WORDS = {"PCIE", "SXM", "SXM2", "SXM4", "SXM5", "HBM2", "HBM2E", "HBM3", "NVL", "MIG"}
_MEMORY_WORD = re.compile(r"^\d+(GB|G)$")


def normalize_gpu_model(name: str) -> str:
    """Map NVML names and user spellings onto one key: ``"NVIDIA GeForce RTX 4090"`` and
    ``"rtx4090"`` both become ``RTX4090``; ``"NVIDIA A100-SXM4-80GB"`` becomes ``A100``."""
    words = re.split(r"[\s\-_]+", name.upper().strip())
    kept = [
        w
        for w in words
        if w and w not in _VENDOR_WORDS and w not in _VARIANT_WORDS and not _MEMORY_WORD.match(w)
    ]
    return "".join(kept)


def _models(*groups: str) -> frozenset[str]:
    return frozenset(normalize_gpu_model(name) for group in groups for name in group.split(","))


KNOWN_GPU_MODELS = _models(
    # data centre
    "B200,B100,GB200,H200,H100,H800,H20,GH200,A100,A800,A40,A30,A16,A10,A10G,A2",
    "L40S,L40,L20,L4,V100,T4,P100,P40,P4,K80,M60",
    # workstation (Quadro and RTX A / Ada; NVML calls the last "RTX 6000 Ada Generation")
    "RTX A6000,RTX A5500,RTX A5000,RTX A4500,RTX A4000,RTX A2000",
    "RTX 6000 Ada,RTX 6000 Ada Generation,RTX 5000 Ada Generation,RTX 4000 Ada Generation",
    "RTX 8000,RTX 6000,RTX 5000,RTX 4000,GV100,GP100",
    # GeForce
    "RTX 5090,RTX 5080,RTX 5070 Ti,RTX 5070,RTX 5060 Ti,RTX 5060",
    "RTX 4090,RTX 4090 D,RTX 4080 SUPER,RTX 4080,RTX 4070 Ti SUPER,RTX 4070 Ti",
    "RTX 4070 SUPER,RTX 4070,RTX 4060 Ti,RTX 4060",
    "RTX 3090 Ti,RTX 3090,RTX 3080 Ti,RTX 3080,RTX 3070 Ti,RTX 3070,RTX 3060 Ti,RTX 3060",
    "RTX 2080 Ti,RTX 2080 SUPER,RTX 2080,RTX 2070 SUPER,RTX 2070,RTX 2060 SUPER,RTX 2060",
    "TITAN RTX,TITAN V,TITAN Xp,GTX 1080 Ti,GTX 1080,GTX 1070 Ti,GTX 1070",
    "GTX 1660 Ti,GTX 1660 SUPER,GTX 1660",
)
"""GPU models the CLI knows, normalised (:func:`normalize_gpu_model`). A model outside it is
almost always a typo ("2xA100", "any"), which no provider would ever match: the job would wait
for ever. A model that is real but newer than this list is accepted with an explicit flag."""

_COUNT_PREFIX = re.compile(r"^(\d+)X(.+)$")


def unknown_gpu_models(models: list[str], offered: frozenset[str] = frozenset()) -> list[str]:
    """The models (as typed) that are neither in :data:`KNOWN_GPU_MODELS` nor among
    ``offered`` (models providers advertise now), in the order given."""
    known = KNOWN_GPU_MODELS | {normalize_gpu_model(m) for m in offered}
    return [m for m in models if normalize_gpu_model(m) not in known]


def unknown_gpu_message(model: str) -> str:
    """Why ``model`` is refused, with the likely intent when it is a common slip (a count
    written into the model, "any"), and the models that are known."""
    key = normalize_gpu_model(model)
    hint = ""
    counted = _COUNT_PREFIX.match(key)
    if counted and counted[2] in KNOWN_GPU_MODELS:
        hint = f" (for {counted[1]} x {counted[2]}, write {counted[2]}:{counted[1]})"
    elif key in {"ANY", "*", "ALL"}:
        hint = " (for any model, leave the model out: a count alone, e.g. 1, or :24GB..:1)"
    known = ", ".join(sorted(KNOWN_GPU_MODELS))
    return f"unknown GPU model {model!r}{hint}; known models: {known}"


class GpuInfo(WireModel):
    """One GPU as the provider's NVML inventory saw it; ``None`` means the driver would not say."""

    index: int = Field(ge=0, le=1023)
    uuid: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    memory_total_mb: int = Field(ge=0, le=MAX_SIZE_MB)
    compute_capability: str | None = Field(default=None, max_length=16, pattern=r"^\d+\.\d+$")
    cuda_cores: int | None = Field(default=None, ge=0, le=10_000_000)
    max_sm_clock_mhz: int | None = Field(default=None, ge=0, le=1_000_000)
    max_memory_clock_mhz: int | None = Field(default=None, ge=0, le=1_000_000)
    memory_bus_width_bits: int | None = Field(default=None, ge=0, le=1_000_000)
    power_limit_w: float | None = Field(default=None, ge=0, le=1_000_000)
    driver_version: str | None = Field(default=None, max_length=64)
    cuda_version: str | None = Field(default=None, max_length=64)
    tflops_fp32: float | None = Field(default=None, ge=0, le=MAX_TFLOPS)
    memory_bandwidth_gbps: float | None = Field(default=None, ge=0, le=1_000_000)
    benchmark_tflops: float | None = Field(default=None, ge=0, le=MAX_TFLOPS)

    @property
    def model(self) -> str:
        """The normalised model key used by matching (see :func:`normalize_gpu_model`)."""
        return normalize_gpu_model(self.name)

    @property
    def effective_tflops(self) -> float | None:
        """The benchmarked figure when there is one, else the theoretical one."""
        return self.benchmark_tflops if self.benchmark_tflops is not None else self.tflops_fp32


class GpuTelemetry(WireModel):
    """Live readings of one GPU that ride on each heartbeat."""

    uuid: str = Field(min_length=1, max_length=128)
    utilization_pct: float | None = Field(default=None, ge=0, le=100)
    temperature_c: float | None = Field(default=None, ge=-273.15, le=1000)
    memory_used_mb: int | None = Field(default=None, ge=0, le=MAX_SIZE_MB)


def compute_capability_value(text: str | None) -> float:
    """Compare ``"8.9"`` style capabilities numerically (``"10.0"`` > ``"9.0"``)."""
    if not text:
        return 0.0
    major, _, minor = text.partition(".")
    return int(major) + int(minor or 0) / 100
