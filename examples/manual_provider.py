"""A provider in ~80 lines, speaking the provider API by hand through the SDK.

It registers a wallet, offers this host's CPU, waits for one job, runs it *in this process*
(a stand-in: the real provider daemon runs jobs in locked-down Docker containers), streams its
log, uploads its outputs and reports the result. Run it against a coordinator:

    python examples/manual_provider.py http://127.0.0.1:8000
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

from eth_account import Account

from gpumarket.protocol import (
    Assignment,
    Heartbeat,
    HostResources,
    LogAppend,
    LogChunk,
    OfferAsk,
    ResultReport,
    Role,
)
from gpumarket.sdk import ProviderClient, register_wallet


def matmul_benchmark(n: int) -> tuple[list[str], dict[str, float]]:
    """Multiply two n x n matrices in pure Python; returns log lines and a result record."""
    a = [[(i * n + j) % 7 / 7 for j in range(n)] for i in range(n)]
    b = [[(i + 2 * j) % 5 / 5 for j in range(n)] for i in range(n)]
    start = time.perf_counter()
    columns = list(zip(*b, strict=True))
    product = [[sum(x * y for x, y in zip(row, col, strict=True)) for col in columns] for row in a]
    seconds = time.perf_counter() - start
    flops = 2 * n**3 / seconds
    trace = sum(product[i][i] for i in range(n))
    lines = [
        f"matmul {n}x{n}: {seconds * 1000:.1f} ms, {flops / 1e6:.1f} MFLOPS\n",
        f"trace = {trace:.6f}\n",
    ]
    return lines, {"n": n, "seconds": seconds, "mflops": flops / 1e6, "trace": trace}


def outputs_archive(result: dict[str, float], work: Path) -> tuple[Path, str]:
    """A tar.gz holding result.json, and its sha256."""
    data = json.dumps(result, indent=2).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("result.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = work / "outputs.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path, "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()


def serve_one_job(url: str, work: Path, price: str = "0.40", wait: float = 60) -> Assignment:
    """Register, offer CPU, take one job, run it, report it; returns the assignment."""
    credential = register_wallet(url, Account.create(), Role.PROVIDER, region="local")
    provider = ProviderClient(url, credential.api_key)
    beat = Heartbeat(
        resources=HostResources(
            cpu_count=float(os.cpu_count() or 1), memory_mb=8192, disk_mb=20480
        ),
        offers=[OfferAsk(gpu_model="CPU", price_per_hour=price)],  # type: ignore[arg-type]
        region="local",
    )
    provider.heartbeat(beat)
    print(f"[provider] registered {credential.account_id}, offering CPU at {price}/h")
    deadline = time.monotonic() + wait
    assignments: list[Assignment] = []
    while not assignments and time.monotonic() < deadline:
        assignments = provider.poll(wait=10)
        provider.heartbeat(beat)
    if not assignments:
        raise SystemExit("[provider] no job was assigned")
    job = assignments[0]
    print(f"[provider] assigned {job.job_id} at {job.price_per_hour}/h; running it")
    provider.started(job.job_id)
    started = time.monotonic()
    n = int(job.spec.env.get("MATRIX_SIZE", "96"))
    lines, result = matmul_benchmark(n)
    provider.append_logs(
        job.job_id, LogAppend(chunks=[LogChunk(seq=i, data=line) for i, line in enumerate(lines)])
    )
    archive, digest = outputs_archive(result, work)
    provider.upload_outputs(job.job_id, archive, digest)
    provider.report_result(
        job.job_id,
        ResultReport(
            exit_code=0,
            usage_seconds=time.monotonic() - started,
            output_hash=digest,
            output_size=archive.stat().st_size,
        ),
    )
    print(f"[provider] reported {job.job_id}: exit 0, outputs {digest[:19]}...")
    return job


if __name__ == "__main__":
    serve_one_job(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000", Path.cwd())
