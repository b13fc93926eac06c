"""What a GPU is, as NVML reports it, and how model names are normalised for matching."""

from __future__ import annotations

import re

from pydantic import Field

from gpumarket.protocol.base import WireModel

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


class GpuInfo(WireModel):
    """One GPU as the provider's NVML inventory saw it; ``None`` means the driver would not say."""

    index: int = Field(ge=0)
    uuid: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    memory_total_mb: int = Field(ge=0)
    compute_capability: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    cuda_cores: int | None = Field(default=None, ge=0)
    max_sm_clock_mhz: int | None = Field(default=None, ge=0)
    max_memory_clock_mhz: int | None = Field(default=None, ge=0)
    memory_bus_width_bits: int | None = Field(default=None, ge=0)
    power_limit_w: float | None = Field(default=None, ge=0)
    driver_version: str | None = None
    cuda_version: str | None = None
    tflops_fp32: float | None = Field(default=None, ge=0)
    memory_bandwidth_gbps: float | None = Field(default=None, ge=0)
    benchmark_tflops: float | None = Field(default=None, ge=0)

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
    temperature_c: float | None = None
    memory_used_mb: int | None = Field(default=None, ge=0)


def compute_capability_value(text: str | None) -> float:
    """Compare ``"8.9"`` style capabilities numerically (``"10.0"`` > ``"9.0"``)."""
    if not text:
        return 0.0
    major, _, minor = text.partition(".")
    return int(major) + int(minor or 0) / 100
