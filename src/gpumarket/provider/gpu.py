"""GPU inventory through NVML (the ``pynvml`` module of the nvidia-ml-py distribution).

Every per-GPU query is made on its own: a call the card or driver does not support
(``NVMLError_NotSupported`` and friends) leaves that field unknown (None) instead of failing the
inventory. No NVML library, or no GPU, is not an error either: the host serves CPU jobs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from gpumarket.protocol import GpuInfo, GpuTelemetry

log = logging.getLogger(__name__)
T = TypeVar("T")


def theoretical_tflops(cuda_cores: int | None, max_sm_clock_mhz: int | None) -> float | None:
    """FP32 peak: 2 FLOPs (one FMA) x cores x max SM clock. An RTX 4090: 82.58 TFLOPS."""
    if not cuda_cores or not max_sm_clock_mhz:
        return None
    return round(2 * cuda_cores * max_sm_clock_mhz * 1e6 / 1e12, 2)


def memory_bandwidth_gbps(
    bus_width_bits: int | None, max_memory_clock_mhz: int | None
) -> float | None:
    """Peak bandwidth: bus bytes x memory clock x 2 (double data rate). An RTX 4090: 1008 GB/s."""
    if not bus_width_bits or not max_memory_clock_mhz:
        return None
    return round(bus_width_bits / 8 * max_memory_clock_mhz * 1e6 * 2 / 1e9, 1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Inventory:
    """What a host has: its GPUs (possibly none) and why there are none, if so."""

    gpus: list[GpuInfo] = field(default_factory=list)
    reason_if_empty: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None


class NvmlInventory:
    """Reads GPUs and live telemetry through an NVML module (the real ``pynvml`` by default;
    tests pass a double with the same functions, constants, return shapes and errors)."""

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        if nvml is None:
            import pynvml

            nvml = pynvml
        self.nvml = nvml

    def _optional(self, call: Callable[[], T], what: str, index: int) -> T | None:
        try:
            return call()
        except self.nvml.NVMLError as exc:
            log.debug("GPU %d: %s unknown (%s)", index, what, exc)
            return None

    def read(self) -> Inventory:
        """Take the inventory; never raises for a missing library, driver or GPU."""
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return Inventory(reason_if_empty=f"NVML unavailable ({exc}): serving CPU jobs only")
        try:
            count = nvml.nvmlDeviceGetCount()
            if count == 0:
                return Inventory(reason_if_empty="NVML found no GPU: serving CPU jobs only")
            driver = self._optional(lambda: _text(nvml.nvmlSystemGetDriverVersion()), "driver", -1)
            cuda_raw = self._optional(nvml.nvmlSystemGetCudaDriverVersion, "CUDA version", -1)
            cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if cuda_raw else None
            gpus = [self._gpu(i, driver, cuda) for i in range(count)]
            return Inventory(gpus=gpus, driver_version=driver, cuda_version=cuda)
        finally:
            self._shutdown()

    def _gpu(self, index: int, driver: str | None, cuda: str | None) -> GpuInfo:
        nvml = self.nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)

        def opt(call: Callable[[], T], what: str) -> T | None:
            return self._optional(call, what, index)

        capability = opt(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle), "capability")
        cores = opt(lambda: int(nvml.nvmlDeviceGetNumGpuCores(handle)), "core count")
        sm_clock = opt(
            lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)), "max SM clock"
        )
        mem_clock = opt(
            lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM)),
            "max memory clock",
        )
        bus = opt(lambda: int(nvml.nvmlDeviceGetMemoryBusWidth(handle)), "memory bus width")
        power_mw = opt(lambda: nvml.nvmlDeviceGetPowerManagementLimit(handle), "power limit")
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuInfo(
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            name=_text(nvml.nvmlDeviceGetName(handle)),
            memory_total_mb=int(memory.total) // (1024 * 1024),
            compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
            cuda_cores=cores,
            max_sm_clock_mhz=sm_clock,
            max_memory_clock_mhz=mem_clock,
            memory_bus_width_bits=bus,
            power_limit_w=power_mw / 1000 if power_mw is not None else None,
            driver_version=driver,
            cuda_version=cuda,
            tflops_fp32=theoretical_tflops(cores, sm_clock),
            memory_bandwidth_gbps=memory_bandwidth_gbps(bus, mem_clock),
        )

    def telemetry(self) -> list[GpuTelemetry]:
        """Live utilization, temperature and memory use of every GPU (empty without NVML)."""
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError:
            return []
        try:
            readings = []
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                readings.append(self._reading(handle, index))
            return readings
        finally:
            self._shutdown()

    def _reading(self, handle: Any, index: int) -> GpuTelemetry:
        nvml = self.nvml

        def utilization() -> Any:
            return nvml.nvmlDeviceGetUtilizationRates(handle)

        def temperature() -> Any:
            return nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)

        def memory() -> Any:
            return nvml.nvmlDeviceGetMemoryInfo(handle)

        util = self._optional(utilization, "utilization", index)
        temp = self._optional(temperature, "temperature", index)
        mem = self._optional(memory, "memory use", index)
        return GpuTelemetry(
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            utilization_pct=float(util.gpu) if util is not None else None,
            temperature_c=float(temp) if temp is not None else None,
            memory_used_mb=int(mem.used) // (1024 * 1024) if mem is not None else None,
        )

    def _shutdown(self) -> None:
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()
