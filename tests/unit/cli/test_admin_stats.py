"""`admin stats` shows the CPU side of the market next to the GPUs: a CPU-only market reads as
busy CPUs and CPU-hours, not as "0 of 0 GPU-hours" alone."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from gpumarket.cli import admin
from gpumarket.cli.main import typer_app
from gpumarket.protocol import MarketStats

CPU_ONLY_MARKET: dict[str, Any] = {
    "jobs_by_state": {"RUNNING": 1, "CANCELLED": 1},
    "providers_total": 2,
    "providers_online": 1,
    "providers_banned": 1,
    "gpus_online": 0,
    "gpus_busy": 0,
    "cpus_online": 4.0,
    "cpus_busy": 2.0,
    "window_seconds": 3600,
    "gpu_hours_used": 0.0,
    "gpu_hours_available": 0.0,
    "utilization": 0.0,
    "cpu_hours_used": 1.0,
    "cpu_hours_available": 4.0,
    "cpu_utilization": 0.25,
    "revenue_micros": 1_250_000,
    "fees_micros": 31_250,
    "pending_micros": 0,
}


class FakeAdmin:
    def stats(self) -> MarketStats:
        return MarketStats.model_validate(CPU_ONLY_MARKET)


def test_stats_show_cpus_and_cpu_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "admin", lambda coordinator, token: FakeAdmin())
    result = CliRunner().invoke(typer_app, ["admin", "stats", "--admin-token", "t"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "providers: 1 online of 2 (1 banned)" in out
    assert "CPUs for CPU jobs: 2 busy of 4 online" in out
    assert "CPUs 25.0% (1.00 of 4.00 CPU-hours)" in out
    assert "revenue 1.250000, fees 0.031250, pending 0.000000" in out
