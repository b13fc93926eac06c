"""Builders shared by the test suites: wallets, heartbeats, specs."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from gpumarket.protocol import GpuInfo, Heartbeat, HostResources, OfferAsk

RTX4090 = {
    "name": "NVIDIA GeForce RTX 4090",
    "memory_total_mb": 24564,
    "compute_capability": "8.9",
    "cuda_cores": 16384,
    "max_sm_clock_mhz": 2520,
    "tflops_fp32": 82.58,
}
A100 = {
    "name": "NVIDIA A100-SXM4-80GB",
    "memory_total_mb": 81920,
    "compute_capability": "8.0",
    "cuda_cores": 6912,
    "max_sm_clock_mhz": 1410,
    "tflops_fp32": 19.49,
}


def new_wallet() -> LocalAccount:
    """A fresh random wallet."""
    account: LocalAccount = Account.create()
    return account


def gpus(card: dict[str, Any], count: int, prefix: str = "GPU") -> list[GpuInfo]:
    """``count`` identical GPUs of ``card`` with unique UUIDs."""
    return [
        GpuInfo(index=i, uuid=f"{prefix}-{card['name'][-4:]}-{i}-{id(card) % 997}", **card)
        for i in range(count)
    ]


def heartbeat(
    gpu_list: list[GpuInfo] | None = None,
    prices: dict[str, str] | None = None,
    cpu: float = 16,
    memory_gb: int = 64,
    disk_gb: int = 500,
    region: str | None = None,
    running: list[str] | None = None,
) -> Heartbeat:
    """A heartbeat offering each GPU model (and CPU) at the given prices."""
    gpu_list = gpu_list or []
    prices = prices or {}
    return Heartbeat(
        gpus=gpu_list,
        resources=HostResources(cpu_count=cpu, memory_mb=memory_gb * 1024, disk_mb=disk_gb * 1024),
        offers=[OfferAsk(gpu_model=m, price_per_hour=p) for m, p in prices.items()],  # type: ignore[arg-type]
        region=region,
        running_jobs=running or [],
    )


def register(client: Any, role: str, region: str | None = None) -> tuple[str, LocalAccount]:
    """Register a fresh wallet through a TestClient; returns (api key, wallet)."""
    wallet = new_wallet()
    challenge = client.post("/v1/auth/challenge", json={"address": wallet.address, "role": role})
    assert challenge.status_code == 201, challenge.text
    body = challenge.json()
    signature = wallet.sign_message(encode_defunct(text=body["message"])).signature.hex()
    payload: dict[str, Any] = {
        "challenge_id": body["challenge_id"],
        "signature": "0x" + signature.removeprefix("0x"),
    }
    if region:
        payload["region"] = region
    response = client.post("/v1/auth/register", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["api_key"], wallet


def outputs_archive(files: dict[str, bytes]) -> bytes:
    """A job's output archive (tar.gz) holding ``files``, as a provider would upload it."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def cpu_spec(**overrides: Any) -> dict[str, Any]:
    """A small CPU job spec as JSON."""
    spec: dict[str, Any] = {
        "image": "busybox:latest",
        "command": ["echo", "hi"],
        "max_price_per_hour": "1.0",
    }
    spec.update(overrides)
    return spec


def gpu_spec(gpu: Any = "RTX4090:1", price: str = "2.0", **overrides: Any) -> dict[str, Any]:
    """A GPU job spec as JSON."""
    spec = cpu_spec(max_price_per_hour=price, resources={"gpu": gpu})
    spec.update(overrides)
    return spec


def running_job(client: Any) -> tuple[str, str, str]:
    """A RUNNING GPU job through a TestClient: (developer key, provider key, job id)."""
    from gpumarket.coordinator.background import matcher

    dev, _ = register(client, "developer")
    prov, _ = register(client, "provider")
    client.post(
        "/v1/provider/heartbeat",
        headers=bearer(prov),
        json=heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}).model_dump(mode="json"),
    )
    job_id = client.post("/v1/jobs", json=gpu_spec(), headers=bearer(dev)).json()["id"]
    app = client.app
    matcher.match_queued(app.state.session_factory, app.state.settings)
    client.post(f"/v1/provider/jobs/{job_id}/started", json={}, headers=bearer(prov))
    return dev, prov, job_id
