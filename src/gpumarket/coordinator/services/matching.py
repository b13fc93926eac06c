"""Matching: which provider gets a queued job, and why others cannot take it.

A job's constraints are checked twice on purpose: in SQL, walking the offers index in rank order
(price per benchmarked TFLOPS, then reputation, then load) so the best eligible offer is found
without a table scan; and in Python for the "why no match" explanation, which must name every
constraint a provider fails. ``tests/unit/coordinator/services/test_matching.py`` checks that the
two agree on random populations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpumarket.coordinator.db.engine import rowcount
from gpumarket.coordinator.db.models import GpuReservation, Job, OfferRow, Provider
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import (
    CPU_OFFER,
    ConstraintMiss,
    JobSpec,
    MatchExplanation,
    ProviderVerdict,
    from_micros,
    to_micros,
)
from gpumarket.protocol.gpu import compute_capability_value, normalize_gpu_model
from gpumarket.protocol.pricing import run_cost_micros
from gpumarket.protocol.settlement import stake_to_lock
from gpumarket.protocol.units import SizeRange, format_size_mb


@dataclass(frozen=True)
class Requirements:
    """A JobSpec reduced to what matching compares, in the units the tables store."""

    gpu_count: int
    models: frozenset[str]
    vram: SizeRange | None
    min_compute_capability: float
    min_tflops: float | None
    max_price_micros: int
    region: str | None
    cpu: float
    memory_mb: int
    disk_mb: int
    network: bool = False
    excluded_providers: frozenset[str] = field(default_factory=frozenset)
    min_score: float | None = None
    newcomers_only: bool = False
    only_provider: str | None = None
    """A known-answer run: the provider it checks, and no other."""
    stake_micros: int = 0

    @classmethod
    def from_spec(
        cls,
        spec: JobSpec,
        excluded: list[str] | None = None,
        settings: CoordinatorSettings | None = None,
    ) -> Requirements:
        """Derive the requirements of ``spec``; ``excluded`` are providers that failed it.
        With ``settings``, also the free stake its result would lock at most (the scaled
        stake of its largest possible claim)."""
        gpu = spec.resources.gpu
        stake = 0
        if settings is not None:
            stake = stake_to_lock(
                run_cost_micros(spec), settings.min_stake_micros, settings.stake_multiple
            )
        return cls(
            gpu_count=gpu.count if gpu else 0,
            models=frozenset(gpu.models) if gpu else frozenset(),
            vram=gpu.vram if gpu else None,
            min_compute_capability=compute_capability_value(
                gpu.min_compute_capability if gpu else None
            ),
            min_tflops=gpu.min_tflops if gpu else None,
            max_price_micros=to_micros(spec.max_price_per_hour),
            region=spec.region,
            cpu=spec.resources.cpu,
            memory_mb=spec.resources.memory_mb,
            disk_mb=spec.resources.disk_mb,
            network=spec.network,
            excluded_providers=frozenset(excluded or ()),
            min_score=spec.min_score,
            stake_micros=stake,
        )

    @property
    def wants_gpu(self) -> bool:
        """Whether the job needs GPU offers (else CPU offers)."""
        return self.gpu_count > 0


def heartbeat_cutoff(now: datetime, settings: CoordinatorSettings) -> datetime:
    """Providers whose last heartbeat is older than this are offline."""
    return now - timedelta(seconds=settings.provider_offline_after_seconds)


def offer_conditions(
    req: Requirements, *, with_models: bool = True, price_as_expression: bool = False
) -> list[Any]:
    """Constraints on the offer row itself (model, free GPUs, VRAM, speed, price).

    ``with_models=False`` leaves out the wanted-models filter (for per-model index streams);
    ``price_as_expression`` writes the price cap so no planner uses the price index for it.
    """
    price = OfferRow.price_micros + 0 if price_as_expression else OfferRow.price_micros
    conditions: list[Any] = [price <= req.max_price_micros]
    if req.wants_gpu:
        if req.models:
            if with_models:
                conditions.append(OfferRow.gpu_model.in_(sorted(req.models)))
        else:
            conditions.append(OfferRow.gpu_model != CPU_OFFER)
        conditions.append(OfferRow.total_count - OfferRow.reserved_count >= req.gpu_count)
        if req.vram is not None and req.vram.min_mb is not None:
            conditions.append(OfferRow.vram_mb >= req.vram.min_mb)
        if req.vram is not None and req.vram.max_mb is not None:
            conditions.append(OfferRow.vram_mb <= req.vram.max_mb)
        if req.min_compute_capability:
            conditions.append(OfferRow.compute_capability >= req.min_compute_capability)
        if req.min_tflops is not None:
            conditions.append(OfferRow.tflops >= req.min_tflops)
    else:
        conditions.append(OfferRow.gpu_model == CPU_OFFER)
    return conditions


def provider_conditions(
    req: Requirements, now: datetime, settings: CoordinatorSettings
) -> list[Any]:
    """Constraints on the provider (liveness, standing, region, free host capacity)."""
    conditions: list[Any] = [
        Provider.online.is_(True),
        Provider.accepting.is_(True),
        Provider.banned.is_(False),
        Provider.last_heartbeat_at >= heartbeat_cutoff(now, settings),
        Provider.reputation >= settings.min_reputation,
        Provider.stake_micros >= max(settings.min_stake_micros, req.stake_micros),
        Provider.cpu_total - Provider.cpu_reserved >= req.cpu,
        Provider.memory_total_mb - Provider.memory_reserved_mb >= req.memory_mb,
        Provider.disk_total_mb - Provider.disk_reserved_mb >= req.disk_mb,
    ]
    if req.region is not None:
        conditions.append(Provider.region == req.region)
    if req.network:
        conditions.append(Provider.allows_network.is_(True))
    if req.excluded_providers:
        conditions.append(Provider.id.not_in(sorted(req.excluded_providers)))
    if req.min_score is not None:
        conditions.append(Provider.score >= req.min_score)  # a newcomer's NULL never passes
    if req.newcomers_only:
        conditions.append(Provider.score.is_(None))
    if req.only_provider is not None:
        conditions.append(Provider.id == req.only_provider)
    return conditions


RANK_ORDER = (OfferRow.rank_price, Provider.reputation.desc(), Provider.active_jobs, OfferRow.id)


def eligible_offers_query(
    req: Requirements, now: datetime, settings: CoordinatorSettings
) -> Select[OfferRow, Provider]:
    """Every offer that can take the job right now, best first (the reference the fast path
    below must agree with; also used by tests)."""
    return (
        select(OfferRow, Provider)
        .join(Provider, Provider.id == OfferRow.provider_id)
        .where(and_(*offer_conditions(req), *provider_conditions(req, now, settings)))
        .order_by(*RANK_ORDER)
    )


def _rank_key(hit: tuple[OfferRow, Provider]) -> tuple[float, float, int, int]:
    offer, provider = hit
    return (offer.rank_price, -provider.reputation, provider.active_jobs, offer.id)


FIRST_PAGE = 32
MAX_PAGE = 4096


def find_best_offer(
    session: Session, req: Requirements, now: datetime, settings: CoordinatorSettings
) -> tuple[OfferRow, Provider] | None:
    """The best offer for ``req`` (same answer as the first row of
    :func:`eligible_offers_query`), without sorting the whole table.

    Offers are read in rank order straight off an index, one stream per wanted model
    (``ix_offers_model_rank``) or a single stream over all offers (``ix_offers_rank``), a page
    at a time with geometrically growing pages; only those candidates are joined to their
    providers. The search stops once the best eligible candidate ranks strictly below the
    *horizon* (the lowest last-rank of any stream that may hold more), so nothing unread can
    beat it, ties on rank included.
    """
    streams: list[str | None] = [*sorted(req.models)] if req.wants_gpu and req.models else [None]
    base = offer_conditions(req, with_models=False)
    walk = offer_conditions(req, with_models=False, price_as_expression=True)
    cursors: dict[str | None, tuple[float, int] | None] = dict.fromkeys(streams)
    open_streams = set(streams)
    best: tuple[OfferRow, Provider] | None = None
    page = FIRST_PAGE
    while open_streams:
        candidate_ids: list[int] = []
        horizon = float("inf")
        for stream in sorted(open_streams, key=str):
            if cursors[stream] is None:
                few = _few_affordable(session, stream, base)
                if few is not None:  # the whole affordable set is small: take it at once
                    candidate_ids += few
                    open_streams.discard(stream)
                    continue
            # the price cap goes in as an expression so planners walk the rank index (in the
            # order we want) rather than range-scan the price index and sort everything found
            query = select(OfferRow.id, OfferRow.rank_price).where(*walk)
            if stream is not None:
                query = query.where(OfferRow.gpu_model == stream)
            cursor = cursors[stream]
            if cursor is not None:
                query = query.where(tuple_(OfferRow.rank_price, OfferRow.id) > tuple_(*cursor))
            rows = session.execute(query.order_by(OfferRow.rank_price, OfferRow.id).limit(page))
            batch = rows.all()
            candidate_ids += [row.id for row in batch]
            if len(batch) < page:
                open_streams.discard(stream)
            else:
                cursors[stream] = (batch[-1].rank_price, batch[-1].id)
                horizon = min(horizon, batch[-1].rank_price)
        if candidate_ids:
            row = session.execute(
                select(OfferRow, Provider)
                .join(Provider, Provider.id == OfferRow.provider_id)
                .where(OfferRow.id.in_(candidate_ids), *provider_conditions(req, now, settings))
                .order_by(*RANK_ORDER)
                .limit(1)
            ).first()
            if row is not None:
                hit = (row[0], row[1])
                if best is None or _rank_key(hit) < _rank_key(best):
                    best = hit
        if best is not None and best[0].rank_price < horizon:
            return best
        page = min(page * 4, MAX_PAGE)
    return best


FEW_AFFORDABLE = 256


def _few_affordable(session: Session, stream: str | None, base: list[Any]) -> list[int] | None:
    """Every offer of the stream within the price cap (and the other offer filters), read off
    the price index, when there are at most ``FEW_AFFORDABLE`` of them; None when there are
    more. A job priced near the bottom of the market then never walks the whole rank index."""
    query = select(OfferRow.id).where(*base)
    if stream is not None:
        query = query.where(OfferRow.gpu_model == stream)
    ids = list(session.scalars(query.order_by(OfferRow.price_micros).limit(FEW_AFFORDABLE + 1)))
    return ids if len(ids) <= FEW_AFFORDABLE else None


# ---------------------------------------------------------------- why no match


def held_back(
    reputation: float, stake_micros: int, settings: CoordinatorSettings
) -> list[ConstraintMiss]:
    """What keeps every job from the provider that the provider itself can change: its
    reputation under the market's floor, or its free stake under what a result locks (each
    committed result locks that much until its challenge window ends)."""
    misses: list[ConstraintMiss] = []
    if reputation < settings.min_reputation:
        misses.append(
            ConstraintMiss(
                constraint="reputation",
                message=f"reputation {reputation:.2f} < floor {settings.min_reputation}",
            )
        )
    if stake_micros < settings.min_stake_micros:
        misses.append(
            ConstraintMiss(
                constraint="stake",
                message=f"free stake {from_micros(stake_micros)} < the "
                f"{from_micros(settings.min_stake_micros)} a result locks at least until its "
                "challenge window ends",
            )
        )
    return misses


def provider_misses(
    provider: Provider, req: Requirements, now: datetime, settings: CoordinatorSettings
) -> list[ConstraintMiss]:
    """Provider-level constraints the provider fails (independent of its offers)."""
    misses: list[ConstraintMiss] = []
    if provider.banned:
        misses.append(ConstraintMiss(constraint="banned", message="the provider is banned"))
    if (
        not provider.online
        or provider.last_heartbeat_at is None
        or provider.last_heartbeat_at < heartbeat_cutoff(now, settings)
    ):
        misses.append(ConstraintMiss(constraint="online", message="no recent heartbeat"))
    elif not provider.accepting:
        misses.append(
            ConstraintMiss(
                constraint="accepting",
                message="not taking jobs now (shutting down, or its Docker engine is down)",
            )
        )
    misses += held_back(provider.reputation, provider.stake_micros, settings)
    if provider.id in req.excluded_providers:
        misses.append(ConstraintMiss(constraint="excluded", message="already failed this job once"))
    if req.min_score is not None and (provider.score is None or provider.score < req.min_score):
        have = (
            "no score yet (a newcomer)" if provider.score is None else f"score {provider.score:.3f}"
        )
        misses.append(
            ConstraintMiss(
                constraint="min_score", message=f"{have}, job wants min_score {req.min_score:g}"
            )
        )
    if settings.min_stake_micros <= provider.stake_micros < req.stake_micros:
        misses.append(
            ConstraintMiss(
                constraint="stake",
                message=f"free stake {from_micros(provider.stake_micros)} < the "
                f"{from_micros(req.stake_micros)} this job's result could lock (the larger of "
                f"{from_micros(settings.min_stake_micros)} and {settings.stake_multiple} x its "
                "most expensive claim)",
            )
        )
    if req.region is not None and provider.region != req.region:
        misses.append(
            ConstraintMiss(
                constraint="region", message=f"region {provider.region!r}, job wants {req.region!r}"
            )
        )
    if req.network and not provider.allows_network:
        misses.append(
            ConstraintMiss(constraint="network", message="does not allow jobs network access")
        )
    free_cpu = provider.cpu_total - provider.cpu_reserved
    if free_cpu < req.cpu:
        misses.append(
            ConstraintMiss(
                constraint="cpu", message=f"{free_cpu:g} CPUs free, job needs {req.cpu:g}"
            )
        )
    free_mem = provider.memory_total_mb - provider.memory_reserved_mb
    if free_mem < req.memory_mb:
        misses.append(
            ConstraintMiss(
                constraint="memory",
                message=f"{format_size_mb(free_mem)} RAM free, job needs "
                f"{format_size_mb(req.memory_mb)}",
            )
        )
    free_disk = provider.disk_total_mb - provider.disk_reserved_mb
    if free_disk < req.disk_mb:
        misses.append(
            ConstraintMiss(
                constraint="disk",
                message=f"{format_size_mb(free_disk)} disk free, job needs "
                f"{format_size_mb(req.disk_mb)}",
            )
        )
    return misses


def offer_misses(offer: OfferRow, req: Requirements) -> list[ConstraintMiss]:
    """Offer-level constraints (model, count, VRAM, speed, price) the offer fails."""
    misses: list[ConstraintMiss] = []
    if req.wants_gpu:
        if offer.gpu_model == CPU_OFFER or (req.models and offer.gpu_model not in req.models):
            wanted = " or ".join(sorted(req.models)) if req.models else "any GPU"
            misses.append(
                ConstraintMiss(
                    constraint="gpu_model",
                    message=f"offers {offer.gpu_model}, job wants {wanted}",
                )
            )
        free = offer.total_count - offer.reserved_count
        if free < req.gpu_count:
            misses.append(
                ConstraintMiss(
                    constraint="gpu_count",
                    message=f"{free} of {offer.total_count} {offer.gpu_model} free, "
                    f"job needs {req.gpu_count}",
                )
            )
        if req.vram is not None and not req.vram.contains(offer.vram_mb):
            misses.append(
                ConstraintMiss(
                    constraint="vram",
                    message=f"{format_size_mb(offer.vram_mb)} VRAM, job wants {req.vram}",
                )
            )
        if req.min_compute_capability and offer.compute_capability < req.min_compute_capability:
            misses.append(
                ConstraintMiss(
                    constraint="compute_capability",
                    message=f"compute capability {offer.compute_capability:.2f} < "
                    f"{req.min_compute_capability:.2f}",
                )
            )
        if req.min_tflops is not None and (offer.tflops is None or offer.tflops < req.min_tflops):
            have = "unknown" if offer.tflops is None else f"{offer.tflops:.1f}"
            misses.append(
                ConstraintMiss(
                    constraint="tflops", message=f"{have} TFLOPS, job wants >= {req.min_tflops:g}"
                )
            )
    elif offer.gpu_model != CPU_OFFER:
        misses.append(
            ConstraintMiss(constraint="gpu_model", message="does not offer CPU-only work")
        )
    if offer.price_micros > req.max_price_micros:
        misses.append(
            ConstraintMiss(
                constraint="price",
                message=f"asks {from_micros(offer.price_micros)}/h, job pays at most "
                f"{from_micros(req.max_price_micros)}/h",
            )
        )
    return misses


def explain(
    session: Session,
    spec: JobSpec,
    now: datetime,
    settings: CoordinatorSettings,
    excluded: list[str] | None = None,
) -> MatchExplanation:
    """For a spec: every matching offer with its price, and for every other provider (up to
    ``settings.explain_max_providers``, most recently seen first) each constraint it fails."""
    req = Requirements.from_spec(spec, excluded, settings)
    total = session.scalar(select(func.count()).select_from(Provider)) or 0
    providers = list(
        session.scalars(
            select(Provider)
            .order_by(Provider.last_heartbeat_at.desc().nulls_last(), Provider.id)
            .limit(settings.explain_max_providers)
        )
    )
    offers_by_provider: dict[str, list[OfferRow]] = {p.id: [] for p in providers}
    if providers:
        for offer in session.scalars(
            select(OfferRow).where(OfferRow.provider_id.in_(list(offers_by_provider)))
        ):
            offers_by_provider[offer.provider_id].append(offer)

    matches: list[tuple[float, ProviderVerdict]] = []
    rejections: list[ProviderVerdict] = []
    summary: dict[str, int] = {}
    for provider in providers:
        base = provider_misses(provider, req, now, settings)
        offers = offers_by_provider[provider.id]
        if not offers:
            misses = [*base, ConstraintMiss(constraint="offers", message="has no offers yet")]
            best: OfferRow | None = None
        else:
            scored = sorted(((offer_misses(o, req), o) for o in offers), key=lambda t: len(t[0]))
            best_misses, best = scored[0]
            misses = base + best_misses
        verdict = ProviderVerdict(
            provider_id=provider.id,
            gpu_model=best.gpu_model if best else None,
            region=provider.region,
            price_per_hour=from_micros(best.price_micros) if best else None,
            matches=not misses,
            misses=misses,
        )
        if misses:
            rejections.append(verdict)
            for constraint in {m.constraint for m in misses}:
                summary[constraint] = summary.get(constraint, 0) + 1
        else:
            assert best is not None
            matches.append((best.rank_price, verdict))
    matches.sort(key=lambda t: t[0])
    return MatchExplanation(
        matches=[v for _, v in matches],
        rejections=rejections,
        summary=dict(sorted(summary.items(), key=lambda kv: -kv[1])),
        providers_considered=len(providers),
        truncated=total > len(providers),
    )


# ---------------------------------------------------------------- reservations


def pick_gpus(session: Session, provider: Provider, model: str, count: int) -> list[str] | None:
    """Choose ``count`` unreserved GPUs of ``model`` on ``provider``, lowest index first."""
    if count == 0:
        return []
    taken = set(
        session.scalars(
            select(GpuReservation.gpu_uuid).where(GpuReservation.provider_id == provider.id)
        )
    )
    candidates = sorted(
        (g for g in provider.gpus if normalize_gpu_model(g["name"]) == model),
        key=lambda g: int(g["index"]),
    )
    free = [str(g["uuid"]) for g in candidates if g["uuid"] not in taken]
    return free[:count] if len(free) >= count else None


def reserve(
    session: Session, job: Job, offer: OfferRow, provider: Provider, req: Requirements
) -> list[str] | None:
    """Atomically hold GPUs, CPU, memory and disk on ``provider`` for ``job``.

    The conditional UPDATE of the provider row comes first: it both checks the free capacity
    and takes the row lock, so reservations on one provider are serialised (and heartbeats,
    which lock the provider before its offers, take locks in the same order). GPUs are then
    picked from what is committed, and the reservation primary key is the last line of defence:
    two coordinators racing for the same GPU cannot both win; the loser gets None and its
    savepoint is rolled back.

    A provider row another transaction holds is skipped (``SKIP LOCKED``), never waited for:
    a matcher holds the providers it already reserved in its batch until it commits, so two
    replicas' matchers that waited on each other's rows in opposite orders deadlocked (and took
    a heartbeat queued on one of those rows down with them). Skipping is a lost race: the
    caller tries the next best offer.
    """
    savepoint = session.begin_nested()
    try:
        free_row = session.scalar(
            select(Provider.id).where(Provider.id == provider.id).with_for_update(skip_locked=True)
        )
        if free_row is None:
            savepoint.rollback()
            return None
        took = rowcount(
            session.execute(
                update(Provider)
                .where(
                    Provider.id == provider.id,
                    Provider.cpu_total - Provider.cpu_reserved >= req.cpu,
                    Provider.memory_total_mb - Provider.memory_reserved_mb >= req.memory_mb,
                    Provider.disk_total_mb - Provider.disk_reserved_mb >= req.disk_mb,
                )
                .values(
                    cpu_reserved=Provider.cpu_reserved + req.cpu,
                    memory_reserved_mb=Provider.memory_reserved_mb + req.memory_mb,
                    disk_reserved_mb=Provider.disk_reserved_mb + req.disk_mb,
                    active_jobs=Provider.active_jobs + 1,
                )
                .execution_options(synchronize_session=False)
            )
        )
        gpu_uuids = pick_gpus(session, provider, offer.gpu_model, req.gpu_count)
        if took != 1 or gpu_uuids is None:
            savepoint.rollback()
            return None
        if req.gpu_count:
            took = rowcount(
                session.execute(
                    update(OfferRow)
                    .where(
                        OfferRow.id == offer.id,
                        OfferRow.total_count - OfferRow.reserved_count >= req.gpu_count,
                    )
                    .values(reserved_count=OfferRow.reserved_count + req.gpu_count)
                    .execution_options(synchronize_session=False)
                )
            )
            if took != 1:
                savepoint.rollback()
                return None
        for uuid in gpu_uuids:
            session.add(GpuReservation(provider_id=provider.id, gpu_uuid=uuid, job_id=job.id))
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        return None
    savepoint.commit()
    return gpu_uuids


def release(session: Session, job: Job) -> None:
    """Give back what ``job`` held on its provider. The lifecycle calls it exactly once, on the
    transition out of ASSIGNED/RUNNING. Locks the provider row first, like :func:`reserve`."""
    if job.provider_id is None:
        return
    req = Requirements.from_spec(JobSpec.model_validate(job.spec))
    session.execute(
        update(Provider)
        .where(Provider.id == job.provider_id)
        .values(
            cpu_reserved=Provider.cpu_reserved - req.cpu,
            memory_reserved_mb=Provider.memory_reserved_mb - req.memory_mb,
            disk_reserved_mb=Provider.disk_reserved_mb - req.disk_mb,
            active_jobs=Provider.active_jobs - 1,
        )
        .execution_options(synchronize_session=False)
    )
    if job.gpu_count and job.offer_gpu_model:
        session.execute(
            update(OfferRow)
            .where(
                OfferRow.provider_id == job.provider_id,
                OfferRow.gpu_model == job.offer_gpu_model,
            )
            .values(reserved_count=OfferRow.reserved_count - job.gpu_count)
            .execution_options(synchronize_session=False)
        )
    session.execute(delete(GpuReservation).where(GpuReservation.job_id == job.id))
