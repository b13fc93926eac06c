"""A faithful stand-in for the ``pynvml`` module (nvidia-ml-py) for hosts without a GPU.

It exposes the real function names and constants, returns the real ctypes structures
(``c_nvmlMemory_t``, ``c_nvmlUtilization_t``) and raises pynvml's own error classes, so the
inventory code runs exactly the paths it runs against a driver. Cards are modelled on what
NVML reports for them; a card can be told which calls its driver does not support.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pynvml


@dataclass
class Card:
    """One GPU as NVML would describe it."""

    name: str
    uuid: str
    memory_mib: int
    capability: tuple[int, int]
    cores: int
    sm_clock_mhz: int
    memory_clock_mhz: int
    bus_width_bits: int
    power_limit_mw: int
    utilization: int = 0
    temperature: int = 40
    memory_used_mib: int = 0
    unsupported: set[str] = field(default_factory=set)


RTX4090 = Card(
    "NVIDIA GeForce RTX 4090",
    "GPU-7b8c5ab8-4a0e-7f7d-2f35-111111111111",
    24564,
    (8, 9),
    16384,
    2520,
    10501,
    384,
    450_000,
    utilization=87,
    temperature=64,
    memory_used_mib=20011,
)
A100 = Card(
    "NVIDIA A100-SXM4-80GB",
    "GPU-5e1d1c2a-9d3c-4c8a-8e2e-222222222222",
    81920,
    (8, 0),
    6912,
    1410,
    1593,
    5120,
    400_000,
)
H100 = Card(
    "NVIDIA H100 80GB HBM3",
    "GPU-0f3e4b9d-1234-4bcd-9ef0-333333333333",
    81559,
    (9, 0),
    16896,
    1980,
    2619,
    5120,
    700_000,
)
T4_OLD_DRIVER = Card(
    "Tesla T4",
    "GPU-9a8b7c6d-5e4f-4a3b-2c1d-444444444444",
    15360,
    (7, 5),
    2560,
    1590,
    5001,
    256,
    70_000,
    unsupported={
        "nvmlDeviceGetNumGpuCores",
        "nvmlDeviceGetMemoryBusWidth",
        "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceGetTemperature",
    },
)


class FakeNvml:
    """Module-like double: ``NvmlInventory(nvml=FakeNvml([...]))``."""

    NVMLError = pynvml.NVMLError
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(
        self,
        cards: list[Card],
        init_error: type[pynvml.NVMLError] | None = None,
        driver: str = "550.54.15",
        cuda: int = 12040,
    ) -> None:
        self.cards = cards
        self.init_error = init_error
        self.driver = driver
        self.cuda = cuda
        self.initialised = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error()
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()
        self.initialised -= 1

    def _card(self, handle: Any, call: str) -> Card:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()
        card: Card = handle
        if call in card.unsupported:
            raise pynvml.NVMLError_NotSupported()
        return card

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Card:
        if index >= len(self.cards):
            raise pynvml.NVMLError_InvalidArgument()
        return self.cards[index]

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._card(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._card(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        card = self._card(handle, "nvmlDeviceGetMemoryInfo")
        memory = pynvml.c_nvmlMemory_t()
        memory.total = card.memory_mib * 1024 * 1024
        memory.used = card.memory_used_mib * 1024 * 1024
        memory.free = memory.total - memory.used
        return memory

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        return self._card(handle, "nvmlDeviceGetCudaComputeCapability").capability

    def nvmlDeviceGetNumGpuCores(self, handle: Any) -> int:
        return self._card(handle, "nvmlDeviceGetNumGpuCores").cores

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        card = self._card(handle, "nvmlDeviceGetMaxClockInfo")
        if clock_type == pynvml.NVML_CLOCK_SM:
            return card.sm_clock_mhz
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return card.memory_clock_mhz
        raise pynvml.NVMLError_InvalidArgument()

    def nvmlDeviceGetMemoryBusWidth(self, handle: Any) -> int:
        return self._card(handle, "nvmlDeviceGetMemoryBusWidth").bus_width_bits

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return self._card(handle, "nvmlDeviceGetPowerManagementLimit").power_limit_mw

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        card = self._card(handle, "nvmlDeviceGetUtilizationRates")
        rates = pynvml.c_nvmlUtilization_t()
        rates.gpu = card.utilization
        rates.memory = card.utilization // 2
        return rates

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return self._card(handle, "nvmlDeviceGetTemperature").temperature
