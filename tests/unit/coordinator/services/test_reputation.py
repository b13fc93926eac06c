"""The open reputation: the score's formula, the newcomer's missing score, uptime, the sampling
rate it sets, and what matching does with it (ranking, min_score, exploring newcomers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import matcher
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, OfferRow, Provider
from gpumarket.coordinator.services import lifecycle, matching, reputation
from gpumarket.coordinator.services.offchain import OffchainSettlement
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec
from tests.helpers import RTX4090, bearer, gpu_spec, gpus, heartbeat, register
from tests.unit.coordinator.conftest import add_developer, add_provider, submit


def test_the_score_rewards_work_and_punishes_each_fault_by_its_weight() -> None:
    clean = reputation.score(100, 0, 0, 0, 0, 0, 0, uptime=1.0)
    assert clean == pytest.approx(101 / 102)
    # a failure, a lost dispute (x3) and a failed re-run (x10) cost in that order
    failed = reputation.score(100, 1, 0, 0, 0, 0, 0, 1.0)
    lost = reputation.score(100, 0, 0, 1, 0, 0, 0, 1.0)
    caught = reputation.score(100, 0, 0, 0, 0, 1, 0, 1.0)
    assert clean > failed > lost > caught
    assert caught == pytest.approx(101 / 112)
    # a slash halves it, downtime discounts it down to half
    assert reputation.score(100, 0, 0, 0, 0, 0, 1, 1.0) == pytest.approx(clean / 2)
    assert reputation.score(100, 0, 0, 0, 0, 0, 0, 0.0) == pytest.approx(clean / 2)
    # passed re-runs count as good work
    assert reputation.score(100, 0, 0, 0, 10, 0, 0, 1.0) > clean


def test_the_sampling_rate_falls_with_the_score_and_rises_after_a_failed_rerun(
    svc_settings: CoordinatorSettings,
) -> None:
    s = svc_settings
    assert reputation.sampling_rate(None, 0, 0, s) == s.sampling_rate_new
    assert reputation.sampling_rate(1.0, 0, 0, s) == pytest.approx(s.sampling_rate_min)
    rates = [reputation.sampling_rate(x / 10, 0, 0, s) for x in range(11)]
    assert rates == sorted(rates, reverse=True)
    assert reputation.sampling_rate(0.99, 0, 1, s) == s.sampling_rate_suspect
    # enough passed re-runs clear one failure's suspicion
    passes = s.suspect_clear_passes
    assert reputation.sampling_rate(0.99, passes, 1, s) < s.sampling_rate_suspect


def test_uptime_counts_the_gaps_between_heartbeats_split_at_midnight() -> None:
    before = datetime(2026, 12, 1, 23, 59, 50, tzinfo=UTC)
    after = before + timedelta(seconds=20)
    days = reputation.add_uptime({}, before, after, offline_after_seconds=60)
    assert days == {"2026-12-01": pytest.approx(10), "2026-12-02": pytest.approx(10)}
    # a gap longer than the offline threshold was downtime, not uptime
    assert reputation.add_uptime(days, after, after + timedelta(minutes=5), 60) == days
    # buckets older than the 30-day window are dropped
    late = after + timedelta(days=40)
    assert reputation.add_uptime(days, late - timedelta(seconds=5), late, 60) == {
        late.date().isoformat(): pytest.approx(5)
    }


def test_a_newcomer_has_no_score_until_it_has_finished_enough_jobs(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    prov = add_provider(factory, svc_settings, heartbeat(gpus(RTX4090, 1), {"RTX4090": "2.0"}))
    with session_scope(factory) as session:
        row = session.get(Provider, prov.account_id)
        assert row is not None
        for _ in range(reputation.NEWCOMER_JOBS - 1):
            lifecycle.reward(session, row.id, completed=1)
        assert row.score is None and row.reputation == reputation.NEWCOMER_RANK
        lifecycle.reward(session, row.id, completed=1)
        assert row.score is not None and row.score > 0.5
        assert row.reputation == row.score
        # its offer is re-ranked: price per TFLOPS over 0.5 + 0.5 x score
        offer = session.query(OfferRow).filter_by(provider_id=row.id).one()
        per_tflops = offer.price_micros / offer.tflops
        assert offer.rank_price == pytest.approx(per_tflops / (0.5 + 0.5 * row.score))


def _settle_score(factory: sessionmaker[Session], provider_id: str, completed: int) -> None:
    with session_scope(factory) as session:
        lifecycle.reward(session, provider_id, completed=completed)


def test_matching_ranks_by_price_per_tflops_adjusted_by_the_score(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    cheap = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="C"), {"RTX4090": "2.0"})
    )
    dear = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="D"), {"RTX4090": "2.4"})
    )
    _settle_score(factory, dear.account_id, 50)  # score ~0.98: ranked as if asking ~2.42
    spec = JobSpec.model_validate(gpu_spec(gpu=1, price="5"))
    with session_scope(factory) as session:
        req = matching.Requirements.from_spec(spec)
        found = matching.find_best_offer(session, req, utcnow(), svc_settings)
        assert found is not None and found[1].id == dear.account_id  # 2.4/0.99 < 2.0/0.75
    _settle_score(factory, cheap.account_id, 50)
    with session_scope(factory) as session:
        found = matching.find_best_offer(session, req, utcnow(), svc_settings)
        assert found is not None and found[1].id == cheap.account_id


def test_min_score_leaves_out_newcomers_and_low_scores_and_says_so(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    newcomer = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="N"), {"RTX4090": "1.0"})
    )
    veteran = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="V"), {"RTX4090": "3.0"})
    )
    _settle_score(factory, veteran.account_id, 20)
    picky = JobSpec.model_validate(gpu_spec(gpu=1, price="5", min_score=0.9))
    with session_scope(factory) as session:
        req = matching.Requirements.from_spec(picky)
        found = matching.find_best_offer(session, req, utcnow(), svc_settings)
        assert found is not None and found[1].id == veteran.account_id
        too_picky = matching.Requirements.from_spec(
            JobSpec.model_validate(gpu_spec(gpu=1, price="5", min_score=0.999))
        )
        assert matching.find_best_offer(session, too_picky, utcnow(), svc_settings) is None
        explained = matching.explain(
            session,
            JobSpec.model_validate(gpu_spec(gpu=1, price="5", min_score=0.999)),
            utcnow(),
            svc_settings,
        )
    messages = {v.provider_id: [m.message for m in v.misses] for v in explained.rejections}
    assert any("no score yet (a newcomer)" in m for m in messages[newcomer.account_id])
    assert any("job wants min_score 0.999" in m for m in messages[veteran.account_id])
    assert explained.summary.get("min_score") == 2


def test_a_share_of_jobs_explores_newcomers_first(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    """With every match exploring, the newcomer gets the job though the veteran ranks first;
    with none, the veteran does."""
    veteran = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="V"), {"RTX4090": "1.0"})
    )
    _settle_score(factory, veteran.account_id, 20)
    newcomer = add_provider(
        factory, svc_settings, heartbeat(gpus(RTX4090, 1, prefix="N"), {"RTX4090": "1.5"})
    )
    dev = add_developer(factory)
    won = {}
    for share in (1.0, 0.0):
        settings = svc_settings.model_copy(update={"explore_share": share})
        ledger = OffchainSettlement()
        job_id = submit(factory, dev, gpu_spec(gpu=1, price="5"), settings, ledger)
        matcher.match_queued(factory, settings)
        with session_scope(factory) as session:
            assigned = session.get(Job, job_id)
            assert assigned is not None
            won[share] = assigned.provider_id
            lifecycle.cancel(session, assigned, "test done", ledger, settings)  # frees the GPU
    assert won == {1.0: newcomer.account_id, 0.0: veteran.account_id}


def test_the_public_profile_needs_no_credential(client: TestClient) -> None:
    prov_key, _ = register(client, "provider", region="eu")
    hb = heartbeat(gpus(RTX4090, 2), {"RTX4090": "1.5"}, region="eu")
    client.post("/v1/provider/heartbeat", json=hb.model_dump(mode="json"), headers=bearer(prov_key))
    me = client.get("/v1/provider/me", headers=bearer(prov_key)).json()
    profile = client.get(f"/v1/providers/{me['id']}")
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["newcomer"] is True and body["score"] is None
    assert body["gpu_models"] == {"RTX4090": 2} and body["online"] is True
    assert body["sampling_rate"] == client.app.state.settings.sampling_rate_new  # type: ignore[attr-defined]
    for counter in ("completed_jobs", "reruns_passed", "reruns_failed", "slashes"):
        assert body[counter] == 0
    assert 0 <= body["uptime_30d"] <= 1
    missing = client.get("/v1/providers/prv_nobody")
    assert missing.status_code == 404 and "no provider" in missing.json()["detail"]
    too_long = client.get("/v1/providers/" + "x" * 41)
    assert too_long.status_code == 422
    offers = client.get("/v1/offers").json()
    assert offers[0]["score"] is None and offers[0]["reputation"] == reputation.NEWCOMER_RANK


def test_uptime_is_the_share_of_the_span_since_registration_online() -> None:
    now = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    row = Provider(registered_at=now - timedelta(days=2), uptime_days={})
    assert reputation.uptime_fraction(row, now) == 0.0
    row.uptime_days = {"2026-12-08": 12 * 3600.0, "2026-12-09": 86400.0, "2026-12-10": 6 * 3600}
    assert reputation.uptime_fraction(row, now) == pytest.approx(42 / 48)
    row.registered_at = now - timedelta(minutes=5)  # too short a span to judge
    assert reputation.uptime_fraction(row, now) == 1.0
