"""A measured matrix-multiply benchmark, run inside a container like any job.

On a GPU (when the image has PyTorch with CUDA) it multiplies FP32 matrices on each assigned
GPU; otherwise it uses NumPy on the CPU. The achieved TFLOPS is reported beside the theoretical
figure from NVML, and a GPU that delivers far below its spec is flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import docker
from docker.types import DeviceRequest

from gpumarket.protocol import GpuInfo
from gpumarket.provider.executor import docker_client

FAR_BELOW_SPEC = 0.5
"""A GPU reaching less than this share of its theoretical FP32 peak is flagged."""

SCRIPT = r"""
import json, time
def run(matmul, sync, n, label):
    matmul(); sync()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        matmul(); reps += 1
    sync()
    seconds = time.perf_counter() - start
    print(json.dumps({"device": label, "n": n, "reps": reps, "seconds": seconds,
                      "tflops": 2 * n ** 3 * reps / seconds / 1e12}), flush=True)
try:
    import torch
    gpu = torch.cuda.is_available()
except Exception:
    gpu = False
if gpu:
    for i in range(torch.cuda.device_count()):
        n = 8192
        a = torch.rand(n, n, device=f"cuda:{i}"); b = torch.rand(n, n, device=f"cuda:{i}")
        run(lambda: a @ b, torch.cuda.synchronize, n, f"cuda:{i}")
else:
    import numpy as np
    n = 1024
    a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
    run(lambda: a @ b, lambda: None, n, "cpu")
"""


@dataclass
class BenchmarkResult:
    """One measured device, beside its theoretical figure when there is one."""

    device: str
    achieved_tflops: float
    theoretical_tflops: float | None = None
    gpu_uuid: str | None = None

    @property
    def efficiency(self) -> float | None:
        """Achieved / theoretical, when both are known."""
        if not self.theoretical_tflops:
            return None
        return self.achieved_tflops / self.theoretical_tflops

    @property
    def far_below_spec(self) -> bool:
        """True when a GPU delivers less than half of its theoretical peak."""
        return self.efficiency is not None and self.efficiency < FAR_BELOW_SPEC


def parse_results(output: str, gpus: list[GpuInfo]) -> list[BenchmarkResult]:
    """Turn the container's JSON lines into results matched to the GPUs they ran on."""
    results: list[BenchmarkResult] = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        device = str(record["device"])
        gpu = None
        if device.startswith("cuda:"):
            index = int(device.split(":")[1])
            gpu = gpus[index] if index < len(gpus) else None
        results.append(
            BenchmarkResult(
                device=gpu.name if gpu else device,
                achieved_tflops=round(float(record["tflops"]), 3),
                theoretical_tflops=gpu.tflops_fp32 if gpu else None,
                gpu_uuid=gpu.uuid if gpu else None,
            )
        )
    return results


def run_benchmark(
    image: str, gpus: list[GpuInfo], client: docker.DockerClient | None = None
) -> list[BenchmarkResult]:
    """Run the benchmark container (no network, read-only, no capabilities) and parse it."""
    client = client or docker_client()
    device_requests = (
        [DeviceRequest(driver="nvidia", device_ids=[g.uuid for g in gpus], capabilities=[["gpu"]])]
        if gpus
        else []
    )
    output = client.containers.run(
        image,
        ["python3", "-c", SCRIPT],
        remove=True,
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        device_requests=device_requests,
        tmpfs={"/tmp": "rw,size=64m"},
        mem_limit="4g",
        stdout=True,
        stderr=True,
    )
    text = output.decode() if isinstance(output, bytes) else str(output)
    return parse_results(text, gpus)
