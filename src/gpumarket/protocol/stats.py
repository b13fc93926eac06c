"""Wire model of the marketplace statistics operators read (``GET /v1/admin/stats``); the
coordinator's ``/metrics`` gauges are built from the same snapshot."""

from __future__ import annotations

from gpumarket.protocol.base import ResponseModel


class MarketStats(ResponseModel):
    """A snapshot of the marketplace (money in micro-units of the payment token).

    A provider is online when its heartbeat is fresh and it is neither banned nor draining;
    GPU figures count its GPU offers, CPU figures its CPU-only offer. Revenue counts every
    payment made for a job (the provider's part and the fee), whatever the job's final state:
    a job cancelled mid-run pays for the seconds it ran."""

    jobs_by_state: dict[str, int]
    providers_total: int
    providers_online: int
    providers_banned: int
    gpus_online: int
    gpus_busy: int
    cpus_online: float
    cpus_busy: float
    window_seconds: int
    gpu_hours_used: float
    gpu_hours_available: float
    utilization: float
    cpu_hours_used: float
    cpu_hours_available: float
    cpu_utilization: float
    revenue_micros: int
    fees_micros: int
    pending_micros: int
