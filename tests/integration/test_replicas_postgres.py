"""Two coordinator processes on one PostgreSQL database: no job is assigned twice and no GPU
is double-booked while both match, take heartbeats and accept submissions at once."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from gpumarket.coordinator.db.models import GpuReservation, Job, JobEventRow, OfferRow
from gpumarket.protocol import JobSpec, JobState, Role
from gpumarket.sdk import Client, ProviderClient, register_wallet
from tests.conftest import ADMIN_TOKEN
from tests.helpers import RTX4090, gpus, heartbeat, new_wallet
from tests.integration.conftest import fresh_postgres_database
from tests.integration.processes import CoordinatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PROVIDERS = 12
GPUS_EACH = 2
JOBS = 40


def test_two_coordinators_never_double_book(tmp_path: Path) -> None:
    db_url = fresh_postgres_database()
    fast = {"GPUMARKET_LOOP_INTERVAL_SECONDS": "0.05", "GPUMARKET_MATCH_BATCH_SIZE": "4"}
    with (
        CoordinatorProcess.start(db_url, tmp_path / "a", ADMIN_TOKEN, extra_env=fast) as one,
        CoordinatorProcess.start(db_url, tmp_path / "b", ADMIN_TOKEN, extra_env=fast) as two,
    ):
        urls = [one.url, two.url]
        dev_key = register_wallet(one.url, new_wallet(), Role.DEVELOPER).api_key
        devs = [Client(url, dev_key) for url in urls]
        spec = JobSpec.model_validate(
            {"image": "busybox", "max_price_per_hour": "5", "resources": {"gpu": "RTX4090:1"}}
        )
        # submissions land on both replicas before any provider exists
        with ThreadPoolExecutor(8) as pool:
            submitted = list(pool.map(lambda i: devs[i % 2].submit(spec).id, range(JOBS)))
        assert len(set(submitted)) == JOBS

        def provider_up(i: int) -> None:
            key = register_wallet(urls[i % 2], new_wallet(), Role.PROVIDER).api_key
            for url in urls:  # heartbeats reach both replicas
                ProviderClient(url, key).heartbeat(
                    heartbeat(gpus(RTX4090, GPUS_EACH, prefix=f"P{i}"), {"RTX4090": "1.0"})
                )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(provider_up, range(PROVIDERS)))

        engine = create_engine(db_url)
        capacity = PROVIDERS * GPUS_EACH
        deadline = time.monotonic() + 30
        with engine.connect() as connection:
            while time.monotonic() < deadline:
                assigned = connection.scalar(
                    select(func.count()).where(Job.state == JobState.ASSIGNED.value)
                )
                if assigned == capacity:
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # let both matchers run more rounds on the remaining queue
            rows = connection.execute(
                select(Job.id, Job.state, Job.provider_id, Job.gpu_uuids)
            ).all()
            assigned_rows = [r for r in rows if r.state == JobState.ASSIGNED.value]
            assert len(assigned_rows) == capacity
            assert sum(r.state == JobState.QUEUED.value for r in rows) == JOBS - capacity
            booked = Counter((r.provider_id, u) for r in assigned_rows for u in r.gpu_uuids)
            assert booked and max(booked.values()) == 1, "a GPU was given to two jobs"
            assert connection.scalar(select(func.count()).select_from(GpuReservation)) == capacity
            assert connection.scalar(select(func.sum(OfferRow.reserved_count))) == capacity
            assignments = Counter(
                connection.scalars(
                    select(JobEventRow.job_id).where(JobEventRow.to_state == "ASSIGNED")
                )
            )
            assert max(assignments.values()) == 1, "a job was assigned twice"
        engine.dispose()
