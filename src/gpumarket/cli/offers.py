"""``gpumarket offers search``: the offer book queried like vast.ai's search, e.g.
``gpumarket offers search gpu=A100 'vram>=40' 'price<=2.5' region=eu 'count>=2'`` (terms with
``<`` or ``>`` quoted, or the shell takes them for redirections)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from gpumarket.cli.consoles import console
from gpumarket.cli.output import JsonOption, or_dash, print_listing
from gpumarket.cli.profile import load_profile
from gpumarket.errors import InvalidRequest
from gpumarket.protocol import JobSpec, MatchExplanation, Offer
from gpumarket.protocol.gpu import unknown_gpu_message, unknown_gpu_models

app = typer.Typer(help="Browse the offer book.", no_args_is_help=True)

_TERM = re.compile(r"^(?P<key>[a-z_]+)\s*(?P<op>>=|<=|=|>|<)\s*(?P<value>.+)$")
KEYS = {
    "gpu": "=",
    "vram": ">=",
    "price": "<=",
    "region": "=",
    "count": ">=",
    "cc": ">=",
    "tflops": ">=",
    "cpu": ">=",
    "memory": ">=",
    "score": ">=",
}
UNBOUNDED_PRICE = "1000000"
OFFER_BOOK_LIMIT = 1000
"""The most offers fetched at once (the API's page limit)."""


def parse_query(terms: list[str]) -> JobSpec:
    """Turn ``key op value`` terms into the spec a dry run checks; each key takes the one
    operator that makes sense for it (a minimum, a maximum or equality)."""
    gpu: dict[str, Any] = {}
    spec: dict[str, Any] = {"image": "offer-search", "max_price_per_hour": UNBOUNDED_PRICE}
    resources: dict[str, Any] = {}
    for term in terms:
        match = _TERM.match(term.strip())
        if not match:
            if term.strip() in KEYS:  # what is left of an unquoted `vram>=40` in a shell
                raise InvalidRequest(
                    f"{term!r} has no operator and value: quote terms with > or < (the shell "
                    f"reads them as redirections), e.g. '{term.strip()}{KEYS[term.strip()]}40'"
                )
            raise InvalidRequest(f"{term!r} is not KEY OP VALUE, e.g. vram>=40 or gpu=A100")
        key, op, value = match["key"], match["op"], match["value"].strip()
        if key not in KEYS:
            raise InvalidRequest(f"unknown key {key!r}; use one of {', '.join(sorted(KEYS))}")
        wanted = KEYS[key]
        if op.rstrip("=") != wanted.rstrip("=") and not (op == "=" and wanted == "="):
            raise InvalidRequest(f"{key} takes {wanted}, e.g. {key}{wanted}{value}")
        if key == "gpu":
            gpu["models"] = [m for m in value.split(",") if m]
        elif key == "vram":
            gpu["vram"] = f"{value}GB.." if value.replace(".", "").isdigit() else f"{value}.."
        elif key == "count":
            gpu["count"] = int(value)
        elif key == "cc":
            gpu["min_compute_capability"] = value
        elif key == "tflops":
            gpu["min_tflops"] = float(value)
        elif key == "price":
            spec["max_price_per_hour"] = value
        elif key == "region":
            spec["region"] = value
        elif key == "cpu":
            resources["cpu"] = float(value)
        elif key == "score":
            spec["min_score"] = value
        else:
            resources["memory"] = value if not value.isdigit() else f"{value}GB"
    if gpu:
        resources["gpu"] = gpu
    if resources:
        spec["resources"] = resources
    from pydantic import ValidationError

    try:
        return JobSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidRequest(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from exc


AllowUnknownGpuOption = Annotated[
    bool,
    typer.Option(
        "--allow-unknown-gpu",
        help="Accept a GPU model the CLI does not know and no provider offers now (a model "
        "newer than its list); without it such a model is refused as a likely typo.",
    ),
]


def refuse_unknown_gpus(spec: JobSpec, sdk: Any, allow_unknown: bool) -> None:
    """Refuse a spec naming a GPU model that is neither a known model nor in the offer book
    now: "2xA100" or "any" would never match a provider and the job would wait for ever.
    The offer book is read only when a model is unknown (a provider may offer a newer one)."""
    gpu = spec.resources.gpu
    if allow_unknown or gpu is None or not gpu.models:
        return
    if not unknown_gpu_models(gpu.models):
        return
    offered = frozenset(o.gpu_model for o in sdk.offers(limit=OFFER_BOOK_LIMIT))
    unknown = unknown_gpu_models(gpu.models, offered)
    if unknown:
        raise InvalidRequest(
            unknown_gpu_message(unknown[0])
            + " (--allow-unknown-gpu accepts a model newer than this list)"
        )


def _offer_key(provider_id: str, gpu_model: str | None) -> tuple[str, str]:
    return provider_id, (gpu_model or "CPU").upper()


def offer_rows(result: MatchExplanation, book: list[Offer]) -> list[tuple[str, ...]]:
    """One table row per matching offer, in the order matching ranks them (price per TFLOPS,
    adjusted by the provider's score), with what that ranking reads: the GPUs free of the
    total, their VRAM, their TFLOPS (benchmarked where the provider measured them, else the
    theoretical figure), the price per TFLOPS and the provider's public score ("new" for a
    newcomer without one yet), taken from the offer book."""
    offers = {_offer_key(o.provider_id, o.gpu_model): o for o in book}
    rows: list[tuple[str, ...]] = []
    for verdict in result.matches:
        offer = offers.get(_offer_key(verdict.provider_id, verdict.gpu_model))
        price = verdict.price_per_hour if verdict.price_per_hour is not None else None
        if offer is not None and price is None:
            price = offer.price_per_hour
        count = vram = tflops = per_tflops = reputation = "-"
        if offer is not None:
            count = f"{offer.free_count}/{offer.total_count}"
            vram = f"{offer.vram_mb / 1024:.0f} GB" if offer.vram_mb else "-"
            if offer.tflops:
                tflops = f"{offer.tflops:.1f}"
                if price is not None:
                    per_tflops = f"{float(price) / offer.tflops:.4f}"
            reputation = "new" if offer.score is None else f"{offer.score:.2f}"
        rows.append(
            (
                verdict.provider_id,
                verdict.gpu_model or "CPU",
                count,
                vram,
                tflops,
                or_dash(price),
                per_tflops,
                reputation,
                verdict.region or "-",
            )
        )
    return rows


@app.command()
def search(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            help="Terms like gpu=A100 'vram>=40' 'price<=2.5' region=eu 'count>=2' 'cc>=8.0' "
            "'tflops>=50' 'score>=0.8' (quote those with < or >: the shell reads them as "
            "redirections)."
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", envvar="GPUMARKET_COORDINATOR", help="Coordinator URL."),
    ] = None,
    allow_unknown_gpu: AllowUnknownGpuOption = False,
    as_json: JsonOption = False,
) -> None:
    """Offers that match, in the order matching ranks them (price per TFLOPS adjusted by the
    provider's public score), with count (free/total), VRAM, TFLOPS (benchmarked where
    measured), price per TFLOPS and score ("new": a newcomer without one yet); and why the
    other providers do not match. `gpumarket provider show ID` prints a provider's record."""
    from gpumarket.sdk import Client

    spec = parse_query(query or [])
    with Client(load_profile(coordinator).coordinator) as sdk:
        refuse_unknown_gpus(spec, sdk, allow_unknown_gpu)
        result: MatchExplanation = sdk.match(spec)
        book = sdk.offers(limit=OFFER_BOOK_LIMIT) if result.matches and not as_json else []
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    if result.providers_considered == 0:
        console.print("the offer book is empty: no provider is online now")
        return
    if not result.matches:
        console.print(f"no offer matches, of {result.providers_considered} online provider(s)")
    else:
        print_listing(
            (
                "provider",
                "gpu",
                "count",
                "VRAM",
                "TFLOPS",
                "price/h",
                "price/TFLOPS-h",
                "score",
                "region",
            ),
            offer_rows(result, book),
            keys=("provider",),
        )
    if result.rejections:
        reasons = ", ".join(f"{name}: {count}" for name, count in result.summary.items())
        count = len(result.rejections)
        who = "1 provider does" if count == 1 else f"{count} providers do"
        console.print(f"{who} not match ({reasons})")
