"""Matching: filters, ranking, reservations, and agreement with the explanation."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, OfferRow, Provider
from gpumarket.coordinator.services import matching, providers
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec
from tests.helpers import A100, RTX4090, cpu_spec, gpu_spec, gpus, heartbeat
from tests.unit.coordinator.conftest import add_developer, add_provider, submit


def best(
    factory: sessionmaker[Session],
    settings: CoordinatorSettings,
    spec: dict[str, Any],
    with_settings: bool = False,
) -> str | None:
    with session_scope(factory) as session:
        req = matching.Requirements.from_spec(
            JobSpec.model_validate(spec), None, settings if with_settings else None
        )
        found = matching.find_best_offer(session, req, utcnow(), settings)
        return found[1].id if found else None


def test_ranks_by_price_per_tflops_then_reputation_then_load(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
) -> None:
    # an A100 at 1.0/h (19.5 TFLOPS) loses to a 4090 at 2.0/h (82.6 TFLOPS) per TFLOPS
    a100 = add_provider(factory, svc_settings, heartbeat(gpus(A100, 1), {"A100": "1.0"}))
    rtx = add_provider(factory, svc_settings, heartbeat(gpus(RTX4090, 1), {"RTX4090": "2.0"}))
    assert best(factory, svc_settings, gpu_spec(gpu=1, price="5")) == rtx.account_id
    assert best(factory, svc_settings, gpu_spec(gpu="A100:1", price="5")) == a100.account_id

    same = heartbeat(gpus(RTX4090, 1, prefix="S"), {"RTX4090": "2.0"})
    trusted = add_provider(factory, svc_settings, same, reputation=0.9)
    assert best(factory, svc_settings, gpu_spec(gpu=1, price="5")) == trusted.account_id
    busy_twin = add_provider(factory, svc_settings, same, reputation=0.9, active_jobs=3)
    assert busy_twin.account_id != best(factory, svc_settings, gpu_spec(gpu=1, price="5"))


def test_every_constraint_filters(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
) -> None:
    beat = heartbeat(
        gpus(RTX4090, 2),
        {"RTX4090": "2.0", "CPU": "0.5"},
        cpu=8,
        memory_gb=32,
        disk_gb=100,
        region="eu",
    )
    provider = add_provider(factory, svc_settings, beat, region="eu")
    ok = gpu_spec(gpu="RTX4090:24GB..:2", price="2.0", region="eu")
    assert best(factory, svc_settings, ok) == provider.account_id
    misses = {
        "model": gpu_spec(gpu="A100:1"),
        "count": gpu_spec(gpu="RTX4090:3"),
        "vram": gpu_spec(gpu="40GB..:1"),
        "vram_max": gpu_spec(gpu="..16GB:1"),
        "compute_capability": gpu_spec(gpu={"count": 1, "min_compute_capability": "9.0"}),
        "tflops": gpu_spec(gpu={"count": 1, "min_tflops": 100}),
        "price": gpu_spec(gpu=1, price="1.99"),
        "region": gpu_spec(gpu=1, region="us"),
        "cpu": gpu_spec(gpu=1, resources={"gpu": 1, "cpu": 9}),
        "memory": gpu_spec(resources={"gpu": 1, "memory": "33GB"}),
        "disk": gpu_spec(resources={"gpu": 1, "disk": "101GB"}),
        "cpu_offer_price": cpu_spec(max_price_per_hour="0.49"),
    }
    for name, spec in misses.items():
        assert best(factory, svc_settings, spec) is None, name
    assert best(factory, svc_settings, cpu_spec(max_price_per_hour="0.5")) == provider.account_id

    for column, value in [
        ("banned", True),
        ("accepting", False),
        ("online", False),
        ("last_heartbeat_at", utcnow() - timedelta(minutes=5)),
        ("reputation", 0.0),
    ]:
        with session_scope(factory) as session:
            row = session.get(Provider, provider.account_id)
            assert row is not None
            saved = getattr(row, column)
            setattr(row, column, value)
        floor = svc_settings.model_copy(update={"min_reputation": 0.1})
        assert best(factory, floor, ok) is None, column
        with session_scope(factory) as session:
            row = session.get(Provider, provider.account_id)
            assert row is not None
            setattr(row, column, saved)
    stake_floor = svc_settings.model_copy(update={"min_stake_micros": 1})
    assert best(factory, stake_floor, ok) is None


def test_reservations_never_double_book(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: Any,
) -> None:
    provider = add_provider(factory, svc_settings, heartbeat(gpus(RTX4090, 3), {"RTX4090": "1"}))
    dev = add_developer(factory)
    first = submit(factory, dev, gpu_spec(gpu="RTX4090:2"), svc_settings, ledger)
    second = submit(factory, dev, gpu_spec(gpu="RTX4090:2"), svc_settings, ledger)
    with session_scope(factory) as session:
        prov = session.get(Provider, provider.account_id)
        offer = session.scalars(select(OfferRow)).one()
        assert prov is not None
        req = matching.Requirements.from_spec(JobSpec.model_validate(gpu_spec(gpu="RTX4090:2")))
        job1, job2 = session.get(Job, first), session.get(Job, second)
        assert job1 is not None and job2 is not None
        taken = matching.reserve(session, job1, offer, prov, req)
        assert taken is not None and len(taken) == 2
        assert matching.reserve(session, job2, offer, prov, req) is None
        session.refresh(offer)
        assert offer.reserved_count == 2
        job1.provider_id, job1.offer_gpu_model = prov.id, offer.gpu_model
        matching.release(session, job1)
        session.refresh(offer)
        session.refresh(prov)
        assert offer.reserved_count == 0 and prov.cpu_reserved == 0 and prov.active_jobs == 0
        assert matching.reserve(session, job2, offer, prov, req) is not None


@pytest.mark.parametrize("first_page", [1, 3, matching.FIRST_PAGE])
def test_fast_path_reference_query_and_explanation_agree(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    monkeypatch: pytest.MonkeyPatch,
    first_page: int,
) -> None:
    """The paged index walk, the full reference query and the Python explanation must give
    the same answers; tiny first pages force the walk through many pages and tie horizons."""
    monkeypatch.setattr(matching, "FIRST_PAGE", first_page)
    rng = random.Random(1234)
    cards = [RTX4090, A100]
    for i in range(60):
        card = rng.choice(cards)
        model = "RTX4090" if card is RTX4090 else "A100"
        beat = heartbeat(
            gpus(card, rng.randint(1, 4), prefix=f"R{i}"),
            {model: f"{rng.uniform(0.5, 3):.2f}", **({"CPU": "0.4"} if rng.random() < 0.5 else {})},
            cpu=rng.choice([4, 16]),
            memory_gb=rng.choice([16, 64]),
            region=rng.choice(["eu", "us"]),
        )
        add_provider(
            factory,
            svc_settings,
            beat,
            region=beat.region,
            banned=rng.random() < 0.1,
            reputation=rng.random(),
        )
    floor = svc_settings.model_copy(update={"min_reputation": 0.2})
    seen_matches = seen_rejections = 0
    for _ in range(40):
        spec = JobSpec.model_validate(
            gpu_spec(
                gpu=f"{rng.choice(['RTX4090', 'A100', ''])}:{rng.choice(['', '30GB..'])}:"
                f"{rng.randint(1, 4)}",
                price=f"{rng.uniform(0.5, 3):.2f}",
                region=rng.choice([None, "eu", "us"]),
            )
            if rng.random() < 0.8
            else cpu_spec(max_price_per_hour="0.5", resources={"memory": "32GB"})
        )
        now = utcnow()
        with session_scope(factory) as session:
            req = matching.Requirements.from_spec(spec)
            sql_ids = {
                p.id for _, p in session.execute(matching.eligible_offers_query(req, now, floor))
            }
            explained = matching.explain(session, spec, now, floor)
            assert {v.provider_id for v in explained.matches} == sql_ids
            reference = session.execute(
                matching.eligible_offers_query(req, now, floor).limit(1)
            ).first()
            fast = matching.find_best_offer(session, req, now, floor)
            assert (fast[0].id if fast else None) == (reference[0].id if reference else None)
            seen_matches += len(sql_ids)
            seen_rejections += len(explained.rejections)
            for verdict in explained.rejections:
                assert verdict.misses, verdict
    assert seen_matches > 20 and seen_rejections > 20  # both sides were really exercised


def test_the_heartbeat_answer_says_what_holds_jobs_back(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:

    beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"})
    provider = add_provider(factory, svc_settings, beat, stake_micros=50_000_000)
    settings = svc_settings.model_copy(
        update={"min_stake_micros": 100_000_000, "min_reputation": 0.1}
    )
    with session_scope(factory) as session:
        held = providers.heartbeat(session, provider, beat, settings).ack.held_back
    assert held == [
        "free stake 50.000000 < the 100.000000 a result locks at least until its challenge "
        "window ends"
    ]
    with session_scope(factory) as session:
        row = session.get(Provider, provider.account_id)
        assert row is not None
        row.stake_micros, row.reputation = 100_000_000, 0.05
    with session_scope(factory) as session:
        held = providers.heartbeat(session, provider, beat, settings).ack.held_back
    assert held == ["reputation 0.05 < floor 0.1"]
    with session_scope(factory) as session:
        assert providers.heartbeat(session, provider, beat, svc_settings).ack.held_back == []


def test_a_job_needs_the_free_stake_its_result_would_lock(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    """A result locks max(floor, multiple x amount): one stake backs many small jobs, and a
    job whose largest claim would lock more than the provider's free stake goes elsewhere."""
    settings = svc_settings.model_copy(update={"min_stake_micros": 1_000_000, "stake_multiple": 20})
    beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"})
    provider = add_provider(factory, settings, beat, stake_micros=5_000_000)
    small = gpu_spec(gpu=1, price="1", max_duration_seconds=360)  # at most 0.1: locks 2
    large = gpu_spec(gpu=1, price="1", max_duration_seconds=3600)  # at most 1.0: locks 20
    assert best(factory, settings, small, with_settings=True) == provider.account_id
    assert best(factory, settings, large, with_settings=True) is None
    with session_scope(factory) as session:
        explained = matching.explain(session, JobSpec.model_validate(large), utcnow(), settings)
    (verdict,) = explained.rejections
    assert [m.message for m in verdict.misses] == [
        "free stake 5.000000 < the 20.000000 this job's result could lock (the larger of "
        "1.000000 and 20 x its most expensive claim)"
    ]


def test_a_beat_whose_free_disk_moved_a_few_mib_rebuilds_no_offers(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    """The daemon reports its work folder's free MiB, which moves every beat: offers (and the
    matcher's wake-up) follow whole GiB only, and the disk offered is rounded down to one."""
    beat = heartbeat(gpus(RTX4090, 1), {"RTX4090": "1"}, disk_gb=100)
    provider = add_provider(factory, svc_settings, beat)

    def beat_with_disk(disk_mb: int) -> bool:
        moved = beat.model_copy(
            update={"resources": beat.resources.model_copy(update={"disk_mb": disk_mb})}
        )
        with session_scope(factory) as session:
            return providers.heartbeat(session, provider, moved, svc_settings).market_changed

    assert beat_with_disk(100 * 1024 + 700) is False  # the same whole GiB
    assert beat_with_disk(100 * 1024 - 1) is True  # down to 99 GiB: matching must know
    with session_scope(factory) as session:
        row = session.get(Provider, provider.account_id)
        assert row is not None and row.disk_total_mb == 99 * 1024
    assert beat_with_disk(99 * 1024 + 1023) is False
