"""``gpumarket offers search``: the offer book queried like vast.ai's search, e.g.
``gpumarket offers search gpu=A100 'vram>=40' 'price<=2.5' region=eu 'count>=2'`` (terms with
``<`` or ``>`` quoted, or the shell takes them for redirections)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from gpumarket.cli.consoles import console
from gpumarket.cli.output import JsonOption, print_listing
from gpumarket.cli.profile import load_profile
from gpumarket.errors import InvalidRequest
from gpumarket.protocol import JobSpec, MatchExplanation

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
}
UNBOUNDED_PRICE = "1000000"


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


@app.command()
def search(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            help="Terms like gpu=A100 'vram>=40' 'price<=2.5' region=eu 'count>=2' 'cc>=8.0' "
            "'tflops>=50' (quote those with < or >: the shell reads them as redirections)."
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option("--coordinator", envvar="GPUMARKET_COORDINATOR", help="Coordinator URL."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Offers that match, cheapest per TFLOPS first, and why the other providers do not."""
    from gpumarket.sdk import Client

    spec = parse_query(query or [])
    with Client(load_profile(coordinator).coordinator) as sdk:
        result: MatchExplanation = sdk.match(spec)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    print_listing(
        ("provider", "gpu", "region", "price/h"),
        (
            (v.provider_id, v.gpu_model or "-", v.region or "-", str(v.price_per_hour))
            for v in result.matches
        ),
        keys=("provider",),
    )
    if result.rejections:
        reasons = ", ".join(f"{name}: {count}" for name, count in result.summary.items())
        count = len(result.rejections)
        who = "1 provider does" if count == 1 else f"{count} providers do"
        console.print(f"{who} not match ({reasons})")
