"""NVML inventory against a faithful double: realistic cards, unsupported calls, no driver."""

from __future__ import annotations

import pynvml
import pytest

from gpumarket.provider.gpu import NvmlInventory, memory_bandwidth_gbps, theoretical_tflops
from tests.unit.provider.nvml_double import A100, H100, RTX4090, T4_OLD_DRIVER, FakeNvml


def test_reads_every_card_with_derived_figures() -> None:
    nvml = FakeNvml([RTX4090, A100, H100])
    found = NvmlInventory(nvml).read()
    assert found.reason_if_empty is None and nvml.initialised == 0  # shut down again
    rtx, a100, h100 = found.gpus
    assert (rtx.index, rtx.uuid, rtx.name) == (0, RTX4090.uuid, "NVIDIA GeForce RTX 4090")
    assert rtx.model == "RTX4090" and a100.model == "A100" and h100.model == "H100"
    assert rtx.memory_total_mb == 24564 and rtx.compute_capability == "8.9"
    assert rtx.tflops_fp32 == 82.58  # 2 x 16,384 cores x 2,520 MHz
    assert rtx.memory_bandwidth_gbps == 1008.1  # 384-bit at 10,501 MHz, double data rate
    assert a100.tflops_fp32 == 19.49 and a100.memory_bandwidth_gbps == 2039.0
    assert h100.tflops_fp32 == 66.91
    assert rtx.power_limit_w == 450.0
    assert rtx.driver_version == "550.54.15" and rtx.cuda_version == "12.4"


def test_unsupported_calls_leave_fields_unknown() -> None:
    found = NvmlInventory(FakeNvml([T4_OLD_DRIVER])).read()
    (t4,) = found.gpus
    assert t4.cuda_cores is None and t4.tflops_fp32 is None
    assert t4.memory_bus_width_bits is None and t4.memory_bandwidth_gbps is None
    assert t4.power_limit_w is None
    assert t4.compute_capability == "7.5" and t4.max_sm_clock_mhz == 1590
    (reading,) = NvmlInventory(FakeNvml([T4_OLD_DRIVER])).telemetry()
    assert reading.temperature_c is None and reading.utilization_pct == 0.0


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (pynvml.NVMLError_LibraryNotFound, "NVML Shared Library Not Found"),
        (pynvml.NVMLError_DriverNotLoaded, "Driver Not Loaded"),
    ],
)
def test_no_library_or_driver_means_cpu_only(error: type[pynvml.NVMLError], says: str) -> None:
    found = NvmlInventory(FakeNvml([RTX4090], init_error=error)).read()
    assert found.gpus == []
    assert found.reason_if_empty is not None and says in found.reason_if_empty
    assert "CPU jobs only" in found.reason_if_empty
    assert NvmlInventory(FakeNvml([], init_error=error)).telemetry() == []


def test_no_gpu_means_cpu_only() -> None:
    found = NvmlInventory(FakeNvml([])).read()
    assert found.gpus == [] and "no GPU" in (found.reason_if_empty or "")


def test_telemetry_reads_live_figures() -> None:
    (reading,) = NvmlInventory(FakeNvml([RTX4090])).telemetry()
    assert reading.uuid == RTX4090.uuid
    assert (reading.utilization_pct, reading.temperature_c, reading.memory_used_mb) == (
        87.0,
        64.0,
        20011,
    )


def test_real_pynvml_without_a_driver_is_handled() -> None:
    """On this machine the real library is absent: the real path must say so, not crash."""
    found = NvmlInventory().read()
    if found.gpus:  # a lent GPU machine: the real inventory must be complete
        assert all(g.uuid.startswith("GPU-") and g.memory_total_mb > 0 for g in found.gpus)
    else:
        assert found.reason_if_empty


def test_formulas() -> None:
    assert theoretical_tflops(None, 2520) is None
    assert memory_bandwidth_gbps(384, None) is None


def test_daemon_refuses_gpus_that_changed_since_they_were_advertised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from eth_account import Account

    from gpumarket.protocol import Assignment, JobSpec
    from gpumarket.provider.config import ProviderConfig
    from gpumarket.provider.daemon import ProviderDaemon

    nvml = FakeNvml([RTX4090, A100])
    daemon = ProviderDaemon(
        ProviderConfig(work_dir=tmp_path),
        Account.create(),
        executor=object(),
        inventory=NvmlInventory(nvml),
    )  # type: ignore[arg-type]

    def assignment(*uuids: str) -> Assignment:
        return Assignment(
            job_id="job_1",
            spec=JobSpec(image="x", max_price_per_hour="1"),  # type: ignore[arg-type]
            gpu_uuids=list(uuids),
            price_per_hour="1",
            attempt=1,  # type: ignore[arg-type]
            lease_expires_at=datetime.now(UTC),
        )

    assert daemon.check_gpus(assignment(RTX4090.uuid, A100.uuid)) is None
    assert daemon.check_gpus(assignment()) is None  # CPU job
    assert "never advertised" in (daemon.check_gpus(assignment("GPU-unknown")) or "")
    nvml.cards = [A100]  # the 4090 fell off the bus
    assert "no longer present" in (daemon.check_gpus(assignment(RTX4090.uuid)) or "")
    swapped = type(A100)(**{**A100.__dict__, "name": "NVIDIA GeForce RTX 3090"})
    nvml.cards = [RTX4090, swapped]  # same UUID, different card
    reason = daemon.check_gpus(assignment(A100.uuid)) or ""
    assert "now a NVIDIA GeForce RTX 3090" in reason and "advertised as NVIDIA A100" in reason


def test_daemon_names_gpus_without_a_price_and_prices_without_a_gpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from eth_account import Account

    from gpumarket.provider.config import ProviderConfig
    from gpumarket.provider.daemon import ProviderDaemon

    config = ProviderConfig(work_dir=tmp_path, prices={"RTX4090": "0.45", "H100": "2"})  # type: ignore[dict-item]
    daemon = ProviderDaemon(
        config,
        Account.create(),
        executor=object(),
        inventory=NvmlInventory(FakeNvml([RTX4090, A100, A100])),
    )  # type: ignore[arg-type]
    problems = daemon.pricing_problems()
    assert problems[0].startswith("2 A100 GPU(s) have no price, so they are not offered")
    assert "--price A100=PRICE" in problems[0]
    assert problems[1:] == [
        "a price is set for H100, but this host has no such GPU (it has A100, RTX4090)"
    ]
    config.prices.pop("H100")
    config.prices["A100"] = config.prices["RTX4090"]
    assert daemon.pricing_problems() == []
