"""/healthz latency while a real coordinator process is attacked: log followers held open,
slowloris connections, a 100,000-level JSON body, a 2 GB Content-Length, a flood of sign-in
challenges and oversized specs, all at once. The target of issue #12 is /healthz within
100 ms throughout, and the process alive at the end.

Run: ``python bench/hostile_input.py [--followers 200] [--slow 200] [--seconds 20]
[--db-url URL]`` (SQLite file by default). Prints /healthz p50/p99/max beside a quiet baseline
measured in the same run, and what each attack was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from eth_account import Account

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.processes import CoordinatorProcess  # noqa: E402

from gpumarket.protocol import Role  # noqa: E402
from gpumarket.sdk import register_wallet  # noqa: E402

SPEC = {"image": "busybox:latest", "command": ["sleep", "1"], "max_price_per_hour": "1"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


async def sample_health(url: str, seconds: float) -> list[float]:
    """/healthz every 50 ms for ``seconds``; latencies in ms (a failure counts as 10 s)."""
    latencies: list[float] = []
    begin = time.monotonic()
    deadline = begin + seconds
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                ok = (await http.get(f"{url}/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - start) * 1000 if ok else 10_000.0)
            if latencies[-1] > 100:
                print(
                    f"  slow /healthz at +{time.monotonic() - begin:.1f} s: {latencies[-1]:.0f} ms"
                )
            await asyncio.sleep(0.05)
    return latencies


async def follower(url: str, key: str, job_id: str, stop: asyncio.Event, opened: list[int]) -> None:
    """Hold a log-follow stream open until ``stop``; counts itself in ``opened`` once the
    coordinator has answered."""
    async with httpx.AsyncClient(timeout=None) as http:
        try:
            async with http.stream(
                "GET",
                f"{url}/v1/jobs/{job_id}/logs",
                params={"follow": "true"},
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                opened.append(response.status_code)
                reader = response.aiter_bytes().__aiter__()
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(reader.__anext__(), 0.5)
                    except TimeoutError:
                        continue
                    except StopAsyncIteration:
                        return
        except httpx.HTTPError:
            return


async def slowloris(port: int, stop: asyncio.Event, closed: Counter[str]) -> None:
    """A connection that never finishes its headers; counts whether the server cut it."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed["refused"] += 1
        return
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    while not stop.is_set():
        try:
            data = await asyncio.wait_for(reader.read(1), 0.5)
        except TimeoutError:
            continue
        if not data:
            closed["cut by the coordinator"] += 1
            break
    else:
        closed["still open at the end"] += 1
    writer.close()


async def raw_request(port: int, data: bytes) -> str:
    """Send raw bytes; the status line of the answer (or what happened)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        line = await asyncio.wait_for(reader.readline(), 10)
    except TimeoutError:
        line = b"no answer in 10 s"
    writer.close()
    return line.decode(errors="replace").strip()


async def attack(url: str, port: int, key: str, seconds: float, answers: Counter[str]) -> None:
    """Fire the single-request attacks and the sign-in flood during the run."""
    deep = b"[" * 100_000 + b"]" * 100_000
    begin = time.monotonic()

    def mark(what: str) -> None:
        print(f"  {what} answered at +{time.monotonic() - begin:.1f} s", flush=True)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for path in ("/v1/auth/challenge", "/v1/offers/match", "/v1/jobs"):
            reply = await http.post(
                path, content=deep, headers={"Content-Type": "application/json"}
            )
            answers[f"100k-deep JSON to {path}: {reply.status_code}"] += 1
            mark(f"deep JSON to {path}")
        huge = await raw_request(
            port,
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2147483648\r\n\r\n{",
        )
        answers[f"Content-Length 2 GB: {huge}"] += 1
        mark("2 GB")
        big = dict(SPEC, env={"BIG": "x" * (10 * 1024 * 1024)})
        reply = await http.post("/v1/jobs", json=big, headers={"Authorization": f"Bearer {key}"})
        answers[f"10 MB spec: {reply.status_code}"] += 1
        mark("10 MB spec")
        deadline = time.monotonic() + seconds / 2
        while time.monotonic() < deadline:
            reply = await http.post(
                "/v1/auth/challenge",
                json={"address": "0x" + "ab" * 20, "role": "developer"},
            )
            answers[f"sign-in challenge flood: {reply.status_code}"] += 1


def _attack_process(
    url: str, port: int, key: str, seconds: float, results: multiprocessing.Queue[Counter[str]]
) -> None:
    answers: Counter[str] = Counter()
    asyncio.run(attack(url, port, key, seconds, answers))
    results.put(answers)


async def run(args: argparse.Namespace, url: str, key: str, job_id: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    quiet = await sample_health(url, 3)
    stop = asyncio.Event()
    closed: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    opened: list[int] = []
    tasks = [
        asyncio.create_task(follower(url, key, job_id, stop, opened)) for _ in range(args.followers)
    ]
    tasks += [asyncio.create_task(slowloris(port, stop, closed)) for _ in range(args.slow)]
    while len(opened) < args.followers:  # noqa: ASYNC110 (measure with every stream open)
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    # the attacker is its own process: its JSON encoding must not stall this sampler's loop
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, no inherited sockets
    results: multiprocessing.Queue[Counter[str]] = spawn.Queue()
    attacker = spawn.Process(target=_attack_process, args=(url, port, key, args.seconds, results))
    attacker.start()
    attacked = await sample_health(url, args.seconds)
    answers.update(await asyncio.to_thread(results.get, True, 120))
    attacker.join()
    stop.set()
    await asyncio.gather(*tasks)
    print(f"\n/healthz (ms)       {'p50':>8} {'p99':>8} {'max':>8}  samples")
    for name, values in (("quiet", quiet), ("under attack", attacked)):
        print(
            f"{name:<18} {statistics.median(values):>8.1f} {pct(values, 99):>8.1f} "
            f"{max(values):>8.1f}  {len(values)}"
        )
    print(f"\n{args.followers} log followers held open; {args.slow} slowloris connections:")
    for outcome, count in sorted(closed.items()):
        print(f"  {count:>5} {outcome}")
    print("answers:")
    for answer, count in sorted(answers.items()):
        print(f"  {count:>5} x {answer}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--db-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {
            # the product's default limits, not the test harness's (which turns them off)
            "GPUMARKET_RATE_LIMIT_AUTH": "60/minute",
            "GPUMARKET_RATE_LIMIT_MATCH": "300/minute",
            "GPUMARKET_RATE_LIMIT_SUBMIT": "3000/minute",
        }
        with CoordinatorProcess.start(
            args.db_url or f"sqlite:///{base / 'coordinator.db'}",
            base / "data",
            admin_token="bench",
            extra_env=env,
        ) as proc:
            key = register_wallet(proc.url, Account.create(), Role.DEVELOPER).api_key
            job_id = httpx.post(
                f"{proc.url}/v1/jobs", json=SPEC, headers={"Authorization": f"Bearer {key}"}
            ).json()["id"]
            asyncio.run(run(args, proc.url, key, job_id))
            alive = proc.process.poll() is None
            print(f"\ncoordinator process alive at the end: {alive}")
            if not alive:
                sys.exit(1)


if __name__ == "__main__":
    main()
