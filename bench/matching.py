"""Matching latency with 1k, 10k and 100k registered providers (p50/p99 per job).

Providers and offers are bulk-inserted straight into a migrated database (SQLite by default,
PostgreSQL with --db-url), with a realistic spread of GPU models, prices, regions, capacity and
liveness. Each measured call is exactly what the matcher does for one queued job:
``find_best_offer`` over the ranked index. Run: ``python bench/matching.py [--sizes 1000,10000]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from gpumarket.coordinator.db import migrate
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import make_engine, make_session_factory
from gpumarket.coordinator.db.models import OfferRow, Provider
from gpumarket.coordinator.services.matching import Requirements, find_best_offer
from gpumarket.coordinator.services.ranking import rank_price
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec

CARDS = {  # model: (vram MB, TFLOPS, compute capability, typical price/h)
    "RTX4090": (24564, 82.6, 8.9, 0.45),
    "RTX3090": (24576, 35.6, 8.6, 0.25),
    "A100": (81920, 19.5, 8.0, 1.30),
    "H100": (81559, 66.9, 9.0, 2.40),
    "L40S": (46068, 91.6, 8.9, 0.90),
    "RTXA6000": (49140, 38.7, 8.6, 0.55),
}
NVML_NAMES = {  # what NVML reports for each model (normalises back to the key)
    "RTX4090": "NVIDIA GeForce RTX 4090",
    "RTX3090": "NVIDIA GeForce RTX 3090",
    "A100": "NVIDIA A100-SXM4-80GB",
    "H100": "NVIDIA H100 80GB HBM3",
    "L40S": "NVIDIA L40S",
    "RTXA6000": "NVIDIA RTX A6000",
}
REGIONS = ["eu", "us", "asia"]


def populate(url: str, count: int, rng: random.Random) -> None:
    engine = make_engine(url)
    now = utcnow()
    providers, offers = [], []
    for i in range(count):
        pid = f"prv_{i:08d}"
        model = rng.choice(list(CARDS))
        vram, tflops, cc, price = CARDS[model]
        gpus = rng.choice([1, 1, 2, 4, 8])
        region = rng.choice(REGIONS)
        fresh = rng.random() < 0.9
        providers.append(
            {
                "id": pid,
                "address": f"0x{i:040x}",
                "api_key_hash": f"{i:064x}",
                "region": region,
                "registered_at": now,
                "online": fresh,
                "accepting": True,
                "banned": rng.random() < 0.01,
                "last_heartbeat_at": now if fresh else now - timedelta(minutes=10),
                "cpu_total": 32.0,
                "memory_total_mb": 256 * 1024,
                "disk_total_mb": 2_000_000,
                "cpu_reserved": 0.0,
                "memory_reserved_mb": 0,
                "disk_reserved_mb": 0,
                "active_jobs": rng.randint(0, 3),
                "gpus": [
                    {
                        "index": g,
                        "uuid": f"GPU-{i:08d}-{g}",
                        "name": NVML_NAMES[model],
                        "memory_total_mb": vram,
                        "compute_capability": str(cc),
                        "tflops_fp32": tflops,
                    }
                    for g in range(gpus)
                ],
                "telemetry": [],
                "completed_jobs": 0,
                "failed_jobs": 0,
                "timed_out_jobs": 0,
                "disputes_lost": 0,
                "reputation": rng.random(),
                "stake_micros": 0,
                "earned_micros": 0,
            }
        )
        ask = int(price * rng.uniform(0.6, 1.6) * 1_000_000)
        offers.append(
            {
                "provider_id": pid,
                "gpu_model": model,
                "vram_mb": vram,
                "compute_capability": cc,
                "tflops": tflops,
                "total_count": gpus,
                "reserved_count": 0,
                "price_micros": ask,
                "rank_price": rank_price(ask, tflops),
                "region": region,
                "updated_at": now,
            }
        )
    with engine.begin() as connection:
        for start in range(0, count, 5000):
            connection.execute(insert(Provider), providers[start : start + 5000])
            connection.execute(insert(OfferRow), offers[start : start + 5000])
    engine.dispose()


def random_spec(rng: random.Random) -> JobSpec:
    gpu: dict[str, object] = {"count": rng.choice([1, 1, 1, 2, 4])}
    if rng.random() < 0.7:
        gpu["models"] = rng.sample(list(CARDS), rng.choice([1, 2]))
    if rng.random() < 0.3:
        gpu["vram"] = "40GB.."
    return JobSpec.model_validate(
        {
            "image": "pytorch/pytorch",
            "resources": {"gpu": gpu, "cpu": 4, "memory": "16GB"},
            "max_price_per_hour": f"{rng.uniform(0.5, 3.0):.2f}",
            "region": rng.choice([None, None, *REGIONS]),
        }
    )


def measure(url: str, queries: int, rng: random.Random) -> tuple[list[float], int]:
    settings = CoordinatorSettings(
        db_url=url, min_reputation=0.05, provider_offline_after_seconds=3600
    )
    engine = make_engine(url)
    factory = make_session_factory(engine)
    specs = [random_spec(rng) for _ in range(queries)]
    timings, matched = [], 0
    with factory() as session:
        for spec in specs[:20]:  # warm the page cache and statement cache
            find_best_offer(session, Requirements.from_spec(spec), utcnow(), settings)
        for spec in specs:
            start = time.perf_counter()
            found = find_best_offer(session, Requirements.from_spec(spec), utcnow(), settings)
            timings.append((time.perf_counter() - start) * 1000)
            matched += found is not None
        session.rollback()
    engine.dispose()
    return timings, matched


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--db-url", default=None, help="a PostgreSQL URL (emptied per size)")
    args = parser.parse_args()
    print(f"{'providers':>10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'matched':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        rng = random.Random(size)
        with tempfile.TemporaryDirectory() as tmp:
            url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            if args.db_url:
                migrate.downgrade(url, "base")
            migrate.upgrade(url)
            populate(url, size, rng)
            timings, matched = measure(url, args.queries, rng)
        print(
            f"{size:>10} {statistics.median(timings):>8.2f} {percentile(timings, 99):>8.2f} "
            f"{statistics.fmean(timings):>8.2f} {matched / len(timings):>8.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
