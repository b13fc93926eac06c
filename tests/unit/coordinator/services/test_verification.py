"""Verification by re-execution, through the API with the off-chain ledger: a sampled job is
re-run on another provider, a disagreement is challenged and broken by a third run, and the
majority's verdict is applied with no human in the loop (the on-chain path is in
tests/e2e/test_verification_on_chain.py)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpumarket.coordinator.background import matcher, verifier
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Job, Provider
from gpumarket.protocol import VerificationState as V
from tests.helpers import RTX4090, bearer, gpu_spec, gpus, heartbeat, outputs_archive, register

HONEST = {"answer.txt": b"42\n"}
WRONG = {"answer.txt": b"41\n"}
OTHER = {"answer.txt": b"40\n"}


@pytest.fixture
def market(client: TestClient) -> dict[str, Any]:
    """A developer and three providers (distinct GPUs, rising prices: a, b, c), every
    newcomer re-run with certainty."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    settings.sampling_rate_new = 1.0
    settings.explore_share = 0.0
    settings.known_answer_share = 0.0  # on in the known-answer tests alone
    dev, _ = register(client, "developer")
    keys = {}
    for name, price in (("a", "1.0"), ("b", "1.5"), ("c", "2.0")):
        key, _ = register(client, "provider")
        beat = heartbeat(gpus(RTX4090, 1, prefix=name.upper()), {"RTX4090": price})
        ack = client.post(
            "/v1/provider/heartbeat", json=beat.model_dump(mode="json"), headers=bearer(key)
        )
        assert ack.status_code == 200, ack.text
        keys[name] = key
    ids = {
        name: client.get("/v1/provider/me", headers=bearer(key)).json()["id"]
        for name, key in keys.items()
    }
    return {"dev": dev, "keys": keys, "ids": ids}


def _tick(client: TestClient) -> None:
    app = client.app
    matcher.match_queued(app.state.session_factory, app.state.settings)  # type: ignore[attr-defined]
    verifier.verify_tick(
        app.state.session_factory,  # type: ignore[attr-defined]
        app.state.settlement,  # type: ignore[attr-defined]
        app.state.settings,  # type: ignore[attr-defined]
    )


def _assignments(client: TestClient, key: str) -> list[dict[str, Any]]:
    """What the provider behind ``key`` is given to run now."""
    polled = client.get("/v1/provider/assignments", params={"wait": 0}, headers=bearer(key))
    return polled.json()["assignments"]  # type: ignore[no-any-return]


def _run(client: TestClient, key: str, files: dict[str, bytes], exit_code: int = 0) -> str:
    """The provider behind ``key`` runs its one assignment and reports ``files``."""
    (assignment,) = _assignments(client, key)
    job_id = assignment["job_id"]
    client.post(f"/v1/provider/jobs/{job_id}/started", json={}, headers=bearer(key))
    archive = outputs_archive(files)
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    up = client.put(
        f"/v1/provider/jobs/{job_id}/outputs",
        content=archive,
        headers={**bearer(key), "X-Content-SHA256": digest},
    )
    assert up.status_code == 200, up.text
    report = {
        "exit_code": exit_code,
        "usage_seconds": 1.0,
        "output_hash": digest,
        "output_size": len(archive),
        "output_digest": up.json()["output_digest"],
    }
    done = client.post(f"/v1/provider/jobs/{job_id}/result", json=report, headers=bearer(key))
    assert done.status_code == 200, done.text
    return job_id


def _submit(client: TestClient, market: dict[str, Any]) -> str:
    spec = gpu_spec(gpu=1, price="5", verification="sampled", deterministic=True)
    reply = client.post("/v1/jobs", json=spec, headers=bearer(market["dev"]))
    assert reply.status_code == 201, reply.text
    _tick(client)
    return str(reply.json()["id"])


def _job(client: TestClient, market: dict[str, Any], job_id: str) -> dict[str, Any]:
    return client.get(f"/v1/jobs/{job_id}", headers=bearer(market["dev"])).json()  # type: ignore[no-any-return]


def _provider(client: TestClient, provider_id: str) -> Provider:
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        row = session.get(Provider, provider_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_rerun_that_agrees_passes_and_is_paid(client: TestClient, market: dict[str, Any]) -> None:
    job_id = _submit(client, market)
    assert _run(client, market["keys"]["a"], HONEST) == job_id
    job = _job(client, market, job_id)
    assert job["state"] == "COMMITTED" and job["verification"] == V.RERUNNING
    assert job["sampling_rate"] == 1.0
    (rerun_id,) = job["verification_runs"]
    deadline_before = job["challenge_deadline"]
    _tick(client)  # the window is extended for the re-run, which goes to b
    job = _job(client, market, job_id)
    assert job["challenge_deadline"] > deadline_before
    assert _run(client, market["keys"]["b"], HONEST) == rerun_id
    _tick(client)
    job = _job(client, market, job_id)
    assert job["verification"] == V.PASSED and job["state"] == "COMMITTED"
    rerun = _job(client, market, rerun_id)
    assert rerun["state"] == "SETTLED" and rerun["verifies_job_id"] == job_id
    assert _provider(client, market["ids"]["a"]).reruns_passed == 1
    assert _provider(client, market["ids"]["b"]).earned_micros > 0
    # the premium: 10 % of the amount, in the job's view, and in the escrow from the start
    assert float(job["verification_premium"]) == pytest.approx(float(job["cost"]) * 0.1, abs=1e-6)
    events = client.get(f"/v1/jobs/{job_id}/events", headers=bearer(market["dev"])).json()
    verify = [e for e in events if e["kind"] == "verify"]
    assert [e["to_state"] for e in verify] == ["rerunning", "passed"]
    assert rerun_id in verify[0]["reason"] and "agrees" in verify[1]["reason"]
    # a developer cannot cancel the market's run
    cancel = client.post(f"/v1/jobs/{rerun_id}/cancel", headers=bearer(market["dev"]))
    assert cancel.status_code == 409 and "verification run" in cancel.json()["detail"]


def test_a_wrong_result_is_caught_challenged_and_refunded_by_the_majority(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], WRONG)
    _tick(client)
    (rerun_id,) = _job(client, market, job_id)["verification_runs"]
    _run(client, market["keys"]["b"], HONEST)
    job = _job(client, market, job_id)
    assert job["verification"] == V.DISPUTED
    rerun_id2, tiebreak_id = job["verification_runs"]
    assert rerun_id2 == rerun_id
    _tick(client)  # the market challenges; the tie-break goes to c (a and b excluded)
    assert _job(client, market, job_id)["state"] == "DISPUTED"
    assert _run(client, market["keys"]["c"], HONEST) == tiebreak_id
    assert _job(client, market, job_id)["verification"] == V.PROVIDER_WRONG
    _tick(client)  # the ruling, and both honest runs paid
    job = _job(client, market, job_id)
    assert job["state"] == "REFUNDED" and job["cost"] == "0"
    assert job["verification_premium"] is None  # refunded whole, premium included
    assert _job(client, market, rerun_id)["state"] == "SETTLED"
    assert _job(client, market, tiebreak_id)["state"] == "SETTLED"
    cheat = _provider(client, market["ids"]["a"])
    assert cheat.reruns_failed == 1 and cheat.disputes_lost == 1
    assert cheat.completed_jobs == 0
    events = client.get(f"/v1/jobs/{job_id}/events", headers=bearer(market["dev"])).json()
    verify = [e["to_state"] for e in events if e["kind"] == "verify"]
    assert verify == ["rerunning", "disputed", "provider_wrong"]
    states = [e["to_state"] for e in events if e["kind"] == "job"]
    assert states[-3:] == ["COMMITTED", "DISPUTED", "REFUNDED"]


def test_a_lying_rerunner_loses_the_tie_break_and_is_not_paid(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], HONEST)
    _tick(client)
    _run(client, market["keys"]["b"], WRONG)
    _tick(client)
    _, tiebreak_id = _job(client, market, job_id)["verification_runs"]
    _run(client, market["keys"]["c"], HONEST)
    _tick(client)
    job = _job(client, market, job_id)
    assert job["verification"] == V.PROVIDER_RIGHT and job["state"] == "SETTLED"
    rerun_id = job["verification_runs"][0]
    assert _job(client, market, rerun_id)["state"] == "REFUNDED"
    assert _job(client, market, tiebreak_id)["state"] == "SETTLED"
    assert _provider(client, market["ids"]["b"]).reruns_failed == 1
    assert _provider(client, market["ids"]["b"]).earned_micros == 0
    assert _provider(client, market["ids"]["a"]).slashes == 0


def test_when_every_run_differs_nobody_is_slashed(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], HONEST)
    _tick(client)
    _run(client, market["keys"]["b"], WRONG)
    _tick(client)
    _run(client, market["keys"]["c"], OTHER)
    _tick(client)
    job = _job(client, market, job_id)
    assert job["verification"] == V.NO_MAJORITY and job["state"] == "SETTLED"
    for run_id in job["verification_runs"]:
        assert _job(client, market, run_id)["state"] == "SETTLED"
    events = client.get(f"/v1/jobs/{job_id}/events", headers=bearer(market["dev"])).json()
    assert any("not deterministic" in e["reason"] for e in events if e["kind"] == "verify")
    for name in ("a", "b", "c"):
        row = _provider(client, market["ids"][name])
        assert row.slashes == 0 and row.disputes_lost == 0


def test_a_rerun_that_finds_no_provider_leaves_the_result_standing(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], HONEST)
    (rerun_id,) = _job(client, market, job_id)["verification_runs"]
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        run = session.get(Job, rerun_id)
        assert run is not None
        run.state = "EXPIRED"  # as the queue-deadline loop leaves it
    _tick(client)
    job = _job(client, market, job_id)
    assert job["verification"] == V.EXPIRED and job["state"] == "COMMITTED"


def test_a_job_not_drawn_says_so(client: TestClient, market: dict[str, Any]) -> None:
    client.app.state.settings.sampling_rate_new = 0.0  # type: ignore[attr-defined]
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], HONEST)
    job = _job(client, market, job_id)
    assert job["verification"] == V.NOT_DRAWN and job["verification_runs"] == []
    assert job["sampling_rate"] == 0.0


def test_a_rerun_that_reports_after_the_window_is_paid_and_changes_nothing(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], HONEST)
    _tick(client)
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        parent = session.get(Job, job_id)
        assert parent is not None
        parent.state = "SETTLED"  # as the finalizer leaves a job whose window ended
    (rerun_id,) = _job(client, market, job_id)["verification_runs"]
    _run(client, market["keys"]["b"], WRONG)
    _tick(client)
    job = _job(client, market, job_id)
    assert job["verification"] == V.EXPIRED and job["verification_runs"] == [rerun_id]
    assert _job(client, market, rerun_id)["state"] == "SETTLED"


def _submit_redundant(client: TestClient, market: dict[str, Any]) -> tuple[str, list[str]]:
    """A redundant job over three providers: its own run and two replicas, matched at once
    (the job first, to the cheapest provider a; its replicas to b and c)."""
    spec = gpu_spec(gpu=1, price="5", verification="redundant", deterministic=True)
    reply = client.post("/v1/jobs", json=spec, headers=bearer(market["dev"]))
    assert reply.status_code == 201, reply.text
    job = reply.json()
    assert job["verification"] == V.RERUNNING
    _tick(client)
    return str(job["id"]), list(job["verification_runs"])


def test_a_redundant_job_runs_on_distinct_providers_and_the_majority_outvotes_its_own_run(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id, replicas = _submit_redundant(client, market)
    # all three are assigned at once, one per provider; the replicas report first
    assert sorted([_run(client, market["keys"][n], HONEST) for n in "bc"]) == sorted(replicas)
    assert _job(client, market, job_id)["verification"] == V.RERUNNING  # the job's own is due
    assert _run(client, market["keys"]["a"], WRONG) == job_id
    job = _job(client, market, job_id)
    assert job["verification"] == V.PROVIDER_WRONG and job["state"] == "COMMITTED"
    _tick(client)  # the market challenges the result the majority is against
    _tick(client)  # the ruling, and the two replicas paid
    job = _job(client, market, job_id)
    assert job["state"] == "REFUNDED" and job["cost"] == "0"
    for replica in replicas:
        assert _job(client, market, replica)["state"] == "SETTLED"
    cheat = _provider(client, market["ids"]["a"])
    assert cheat.reruns_failed == 1 and cheat.disputes_lost == 1
    for honest in ("b", "c"):
        assert _provider(client, market["ids"][honest]).earned_micros > 0
    events = client.get(f"/v1/jobs/{job_id}/events", headers=bearer(market["dev"])).json()
    assert [e["to_state"] for e in events if e["kind"] == "verify"] == [
        "rerunning",
        "provider_wrong",
    ]


def test_a_redundant_replica_in_the_minority_is_not_paid_and_the_job_passes(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id, replicas = _submit_redundant(client, market)
    assert _run(client, market["keys"]["a"], HONEST) == job_id
    assert _job(client, market, job_id)["verification"] == V.RERUNNING  # one vote of three
    liar = _run(client, market["keys"]["b"], WRONG)
    assert _job(client, market, job_id)["verification"] == V.RERUNNING  # 1 - 1: wait for c
    honest = _run(client, market["keys"]["c"], HONEST)
    job = _job(client, market, job_id)
    assert job["verification"] == V.PASSED and job["state"] == "COMMITTED"
    _tick(client)
    assert _job(client, market, liar)["state"] == "REFUNDED"  # closed unpaid
    assert _job(client, market, honest)["state"] == "SETTLED"
    assert {liar, honest} == set(replicas)
    assert _provider(client, market["ids"]["b"]).reruns_failed == 1
    assert _provider(client, market["ids"]["a"]).reruns_passed == 1
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        row = session.get(Job, job_id)
        assert row is not None and row.amount_micros
        # the developer pays the premium (10 %) and the amount once more per replica
        assert row.premium_micros == row.amount_micros * 21_000 // 10_000


def test_a_redundant_job_whose_runs_all_differ_has_no_majority(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id, replicas = _submit_redundant(client, market)
    _run(client, market["keys"]["a"], HONEST)
    _run(client, market["keys"]["b"], WRONG)
    _run(client, market["keys"]["c"], OTHER)
    job = _job(client, market, job_id)
    assert job["verification"] == V.NO_MAJORITY and job["verification_runs"] == replicas
    _tick(client)
    assert _job(client, market, job_id)["state"] == "COMMITTED"  # never challenged
    for replica in replicas:
        assert _job(client, market, replica)["state"] == "SETTLED"
    for name in ("a", "b", "c"):
        assert _provider(client, market["ids"][name]).slashes == 0


@pytest.mark.parametrize("answer", ["right", "wrong"])
def test_a_newcomer_gets_a_known_answer_replay_of_a_verified_job(
    client: TestClient, market: dict[str, Any], answer: str
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    job_id = _submit(client, market)
    _run(client, market["keys"]["a"], HONEST)
    _tick(client)
    _run(client, market["keys"]["b"], HONEST)
    assert _job(client, market, job_id)["verification"] == V.PASSED
    _tick(client)  # known answers off: nothing planted
    assert _assignments(client, market["keys"]["c"]) == []
    settings.known_answer_share = 0.05
    _tick(client)  # c, a newcomer that had no part in the job, gets a replay of it
    _tick(client)  # matched to c alone
    replay_id = _run(client, market["keys"]["c"], HONEST if answer == "right" else WRONG)
    replay = _job(client, market, replay_id)
    assert replay["verifies_job_id"] == job_id
    assert replay_id not in _job(client, market, job_id)["verification_runs"]
    _tick(client)  # paid or closed; no second replay while c is not due one
    c = _provider(client, market["ids"]["c"])
    if answer == "right":
        assert _job(client, market, replay_id)["state"] == "SETTLED"
        assert (c.reruns_passed, c.reruns_failed) == (1, 0)
    else:
        assert _job(client, market, replay_id)["state"] == "REFUNDED"  # not paid
        assert (c.reruns_passed, c.reruns_failed) == (0, 1)
        profile = client.get(f"/v1/providers/{market['ids']['c']}").json()
        assert profile["reruns_failed"] == 1
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        planted = session.query(Job).filter(Job.pinned_provider_id == market["ids"]["c"]).count()
    assert planted == 1


@pytest.mark.parametrize("ran", [True, False])
def test_a_job_that_is_not_deterministic_on_a_newcomer_is_checked_for_liveness_only(
    client: TestClient, market: dict[str, Any], ran: bool
) -> None:
    client.app.state.settings.liveness_sampling = True  # type: ignore[attr-defined]
    spec = gpu_spec(gpu=1, price="5")  # optimistic, not deterministic
    reply = client.post("/v1/jobs", json=spec, headers=bearer(market["dev"]))
    job_id = reply.json()["id"]
    _tick(client)
    _run(client, market["keys"]["a"], HONEST)
    job = _job(client, market, job_id)
    assert job["verification"] == V.LIVENESS_CHECK
    (run_id,) = job["verification_runs"]
    _tick(client)  # on another provider; the window is not extended: it never challenges
    # the re-run writes other bytes (the job is not deterministic): never compared
    _run(client, market["keys"]["b"], WRONG, exit_code=0 if ran else 3)
    job = _job(client, market, job_id)
    assert job["verification"] == (V.PASSED if ran else V.LIVENESS_FAILED)
    _tick(client)
    assert _job(client, market, run_id)["state"] == "SETTLED"  # the re-runner is paid
    job = _job(client, market, job_id)
    assert job["state"] == "COMMITTED"  # never challenged: it settles as any optimistic job
    events = client.get(f"/v1/jobs/{job_id}/events", headers=bearer(market["dev"])).json()
    assert [e["to_state"] for e in events if e["kind"] == "verify"] == [
        "liveness_check",
        "passed" if ran else "liveness_failed",
    ]
    a = _provider(client, market["ids"]["a"])
    assert a.slashes == 0 and a.disputes_lost == 0
    assert (a.reruns_passed, a.reruns_failed) == ((1, 0) if ran else (0, 1))
    listed = client.get("/v1/jobs", headers=bearer(market["dev"])).json()["items"]
    assert [j["id"] for j in listed] == [job_id]  # the market's run is listed with its job
    # a job that passed a liveness check has no known answer: it is never replayed
    client.app.state.settings.known_answer_share = 0.05  # type: ignore[attr-defined]
    _tick(client)
    _tick(client)
    assert _assignments(client, market["keys"]["c"]) == []


def test_a_replica_reporting_after_the_majority_is_judged_against_it(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id, _ = _submit_redundant(client, market)
    _run(client, market["keys"]["a"], HONEST)
    _run(client, market["keys"]["b"], HONEST)
    assert _job(client, market, job_id)["verification"] == V.PASSED  # 2 of 3 already
    late = _run(client, market["keys"]["c"], WRONG)
    _tick(client)
    assert _job(client, market, late)["state"] == "REFUNDED"  # in the minority: not paid
    assert _provider(client, market["ids"]["c"]).reruns_failed == 1


def test_a_cancelled_redundant_job_calls_its_runs_off_and_keeps_their_outputs(
    client: TestClient, market: dict[str, Any]
) -> None:
    job_id, replicas = _submit_redundant(client, market)
    reported = _run(client, market["keys"]["b"], HONEST)
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(market["dev"]))
    assert cancelled.status_code == 200, cancelled.text
    _tick(client)  # its verification closed, its runs called off or judged
    _tick(client)  # the run that reported is paid
    assert _job(client, market, job_id)["verification"] == V.EXPIRED
    (running,) = [r for r in replicas if r != reported]
    assert _job(client, market, running)["state"] == "CANCELLED"  # its provider stops
    assert _job(client, market, reported)["state"] == "SETTLED"  # paid for the work it did
    # the developer cancelled before its job had a result: the runs' outputs are not its own
    denied = client.get(f"/v1/jobs/{reported}/outputs", headers=bearer(market["dev"]))
    assert denied.status_code == 403, denied.text
    assert "no result of its own" in denied.json()["detail"]
