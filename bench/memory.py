"""Resident memory of a coordinator process with 100k providers registered and 10k jobs
queued, while its background loops work the queue and clients call the API.

Run: ``python bench/memory.py [--providers 100000] [--jobs 10000] [--seconds 20]``.
Prints the process's RSS over time and its peak (VmHWM from /proc).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from matching import populate  # noqa: E402
from tests.integration.processes import CoordinatorProcess  # noqa: E402

from gpumarket.coordinator.db import migrate  # noqa: E402
from gpumarket.coordinator.db.base import utcnow  # noqa: E402
from gpumarket.coordinator.db.engine import make_engine  # noqa: E402
from gpumarket.coordinator.db.models import Developer, Job, JobEventRow  # noqa: E402
from gpumarket.protocol import JobSpec  # noqa: E402


def queue_jobs(url: str, count: int, rng: random.Random) -> None:
    engine = make_engine(url)
    now = utcnow()
    jobs, events = [], []
    for i in range(count):
        model = rng.choice(["H100", "A100", "RTX4090"])
        spec = JobSpec.model_validate(
            {
                "image": "pytorch/pytorch",
                "command": ["python", "train.py", f"--seed={i}"],
                "max_price_per_hour": f"{rng.uniform(0.05, 0.8):.2f}",  # many below every ask
                "resources": {"gpu": f"{model}:1", "cpu": 4, "memory": "16GB"},
            }
        )
        job_id = f"job_{i:016x}"
        jobs.append(
            {
                "id": job_id,
                "owner_id": "dev_bench",
                "state": "QUEUED",
                "spec": spec.model_dump(mode="json"),
                "spec_hash": f"{i:064x}",
                "gpu_count": 1,
                "max_price_micros": 300_000,
                "escrow_micros": 300_000,
                "created_at": now,
                "updated_at": now,
                "queue_deadline_at": now + timedelta(days=1),
                "next_match_at": now,
                "match_failures": 0,
                "gpu_uuids": [],
                "excluded_provider_ids": [],
                "attempts": 0,
                "outputs_stored": False,
                "log_bytes": 0,
                "log_truncated": False,
            }
        )
        events.append(
            {
                "job_id": job_id,
                "from_state": None,
                "to_state": "QUEUED",
                "reason": "bench",
                "at": now,
            }
        )
    with engine.begin() as connection:
        connection.execute(
            insert(Developer),
            [
                {
                    "id": "dev_bench",
                    "address": "0x" + "b" * 40,
                    "api_key_hash": "b" * 64,
                    "created_at": now,
                }
            ],
        )
        for start in range(0, count, 2000):
            connection.execute(insert(Job), jobs[start : start + 2000])
            connection.execute(insert(JobEventRow), events[start : start + 2000])
    engine.dispose()


def rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--providers", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'memory.db'}"
        migrate.upgrade(url)
        started = time.perf_counter()
        populate(url, args.providers, rng)
        queue_jobs(url, args.jobs, rng)
        print(
            f"populated {args.providers} providers and {args.jobs} queued jobs in "
            f"{time.perf_counter() - started:.1f} s"
        )
        env = {
            "GPUMARKET_PROVIDER_OFFLINE_AFTER_SECONDS": "86400",
            "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.5",
        }
        with CoordinatorProcess.start(
            url, Path(tmp) / "data", admin_token="bench", extra_env=env
        ) as proc:
            pid = proc.process.pid
            print(f"{'t (s)':>6} {'RSS MB':>8}")
            deadline = time.monotonic() + args.seconds
            begin = time.monotonic()
            with httpx.Client(base_url=proc.url, timeout=60) as http:
                while time.monotonic() < deadline:
                    http.get("/v1/offers", params={"limit": 1000})
                    http.get("/v1/admin/stats", headers={"Authorization": "Bearer bench"})
                    http.get(
                        "/v1/admin/providers",
                        params={"limit": 1000},
                        headers={"Authorization": "Bearer bench"},
                    )
                    http.get("/metrics", headers={"Authorization": "Bearer bench"})
                    http.post(
                        "/v1/offers/match",
                        json={
                            "image": "x",
                            "max_price_per_hour": "1",
                            "resources": {"gpu": "A100:1"},
                        },
                    )
                    rss, _ = rss_kb(pid)
                    print(f"{time.monotonic() - begin:>6.1f} {rss / 1024:>8.1f}", flush=True)
                    time.sleep(1.0)
                stats = http.get(
                    "/v1/admin/stats", headers={"Authorization": "Bearer bench"}
                ).json()
            rss, peak = rss_kb(pid)
        print(
            f"\ncoordinator RSS now {rss / 1024:.1f} MB, peak {peak / 1024:.1f} MB "
            f"({args.providers} providers, {args.jobs} jobs; assigned meanwhile: "
            f"{stats['jobs_by_state']['ASSIGNED']}, still queued: "
            f"{stats['jobs_by_state']['QUEUED']})"
        )


if __name__ == "__main__":
    main()
