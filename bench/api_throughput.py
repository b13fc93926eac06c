"""Heartbeats/s and job submissions/s with 16 concurrent clients against a real coordinator
process, beside a bare FastAPI + SQLAlchemy one-INSERT endpoint measured in the same run.

Run: ``python bench/api_throughput.py [--seconds 10] [--clients 16] [--db-url URL]``
(SQLite file by default). Prints req/s, p50 and p99 latency, and the share of the bare rate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import RTX4090, gpus  # noqa: E402
from tests.integration.processes import CoordinatorProcess, free_port  # noqa: E402

from gpumarket.protocol import Heartbeat, HostResources, OfferAsk, Role  # noqa: E402
from gpumarket.sdk import register_wallet  # noqa: E402


def heartbeat_body(i: int) -> dict[str, Any]:
    beat = Heartbeat(
        gpus=gpus(RTX4090, 4, prefix=f"GPU-{i}"),
        resources=HostResources(cpu_count=32, memory_mb=128 * 1024, disk_mb=1024 * 1024),
        offers=[OfferAsk(gpu_model="RTX4090", price_per_hour="0.50")],  # type: ignore[arg-type]
        region="eu",
    )
    return beat.model_dump(mode="json")


async def drive(
    clients: int, seconds: float, request: Callable[[httpx.AsyncClient, int], Any]
) -> tuple[int, list[float]]:
    """Run ``clients`` workers for ``seconds``; returns (successful requests, latencies ms)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(timeout=30) as http:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                response = await request(http, i)
                if response.is_success:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    errors += 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    if errors:
        print(f"  ({errors} failed requests)", file=sys.stderr)
    return len(latencies), latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--db-url", default=None)
    parser.add_argument(
        "--api-only",
        action="store_true",
        help="run the coordinator with its background loops off (an API replica)",
    )
    args = parser.parse_args()
    results: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        bare_url = args.db_url or f"sqlite:///{base / 'bare.db'}"
        port = free_port()
        bare = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py"), bare_url, str(port)]
        )
        try:
            for _ in range(100):
                try:
                    httpx.post(f"http://127.0.0.1:{port}/insert", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)

            async def insert(http: httpx.AsyncClient, _: int) -> httpx.Response:
                return await http.post(f"http://127.0.0.1:{port}/insert")

            n, lat = asyncio.run(drive(args.clients, args.seconds, insert))
            results["bare insert"] = (n / args.seconds, statistics.median(lat), pct(lat, 99))
        finally:
            bare.terminate()
            bare.wait()

        coord_url = args.db_url or f"sqlite:///{base / 'coordinator.db'}"
        env = {"GPUMARKET_BACKGROUND": "false"} if args.api_only else {}
        with CoordinatorProcess.start(
            coord_url, base / "data", admin_token="bench", extra_env=env
        ) as proc:
            providers = [
                register_wallet(proc.url, Account.create(), Role.PROVIDER).api_key
                for _ in range(args.clients)
            ]
            bodies = [heartbeat_body(i) for i in range(args.clients)]
            for key, body in zip(providers, bodies, strict=True):  # first beat builds offers
                httpx.post(
                    f"{proc.url}/v1/provider/heartbeat",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )

            async def beat(http: httpx.AsyncClient, i: int) -> httpx.Response:
                return await http.post(
                    f"{proc.url}/v1/provider/heartbeat",
                    json=bodies[i],
                    headers={"Authorization": f"Bearer {providers[i]}"},
                )

            n, lat = asyncio.run(drive(args.clients, args.seconds, beat))
            results["heartbeat"] = (n / args.seconds, statistics.median(lat), pct(lat, 99))

            dev = register_wallet(proc.url, Account.create(), Role.DEVELOPER).api_key
            spec = {
                "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
                "command": ["python", "train.py"],
                "max_price_per_hour": "0.60",
                "resources": {"gpu": "RTX4090:24GB..:1", "cpu": 4, "memory": "16GB"},
            }

            async def submit(http: httpx.AsyncClient, _: int) -> httpx.Response:
                return await http.post(
                    f"{proc.url}/v1/jobs", json=spec, headers={"Authorization": f"Bearer {dev}"}
                )

            n, lat = asyncio.run(drive(args.clients, args.seconds, submit))
            results["job submit"] = (n / args.seconds, statistics.median(lat), pct(lat, 99))

    bare_rate = results["bare insert"][0]
    print(
        f"\n{args.clients} concurrent clients, {args.seconds:.0f} s each, "
        f"{'PostgreSQL' if args.db_url else 'SQLite'}, background loops "
        f"{'off (API replica)' if args.api_only else 'on (matching while submitting)'}"
    )
    print(f"{'endpoint':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8}")
    for name, (rate, p50, p99) in results.items():
        print(f"{name:<12} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f} {rate / bare_rate:>8.0%}")


if __name__ == "__main__":
    main()
