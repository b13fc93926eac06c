"""Output packing, provider configuration, benchmark parsing (the keystore wallets' tests
are tests/unit/test_keystore.py)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from gpumarket.errors import InvalidRequest
from gpumarket.protocol import GpuInfo
from gpumarket.provider.benchmark import parse_results
from gpumarket.provider.config import load_config
from gpumarket.provider.outputs import OutputsTooLarge, pack_outputs


def test_pack_keeps_files_and_inside_links_and_drops_escapes(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a.txt").write_text("alpha")
    (out / "inside").symlink_to("sub/a.txt")
    (out / "etc").symlink_to("/etc")
    (out / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(out / "pipe")
    packed = pack_outputs(out, tmp_path / "o.tar.gz", max_bytes=1024)
    with tarfile.open(packed.path) as tar:
        names = set(tar.getnames())
        assert names == {"sub", "sub/a.txt", "inside"}
        assert tar.getmember("inside").issym()
    assert any("etc" in s for s in packed.skipped) and any("passwd" in s for s in packed.skipped)
    assert any("pipe" in s for s in packed.skipped)
    assert packed.digest.startswith("sha256:") and packed.size == packed.path.stat().st_size


def test_pack_refuses_over_the_cap(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "big").write_bytes(b"x" * 2048)
    with pytest.raises(OutputsTooLarge, match="2048 bytes, over the 1024"):
        pack_outputs(out, tmp_path / "o.tar.gz", max_bytes=1024)
    assert not (tmp_path / "o.tar.gz").exists()


def test_config_from_toml_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "provider.toml"
    path.write_text(
        'coordinator_url = "http://c:1"\nregion = "eu"\n'
        'allowed_images = ["ghcr.io/acme/", "python:"]\n'
        '[prices]\n"NVIDIA GeForce RTX 4090" = "0.45"\n'
    )
    config = load_config(path, region="us")
    assert config.coordinator_url == "http://c:1" and config.region == "us"
    assert str(config.prices["RTX4090"]) == "0.45"
    assert config.image_allowed("python:3.12") and config.image_allowed("ghcr.io/acme/x")
    assert not config.image_allowed("evil/miner")
    assert "~" not in str(config.work_dir)


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "provider.toml"
    path.write_text("max_concurrent_jobs = 0\nprise = 1\n")
    with pytest.raises(InvalidRequest, match="max_concurrent_jobs") as info:
        load_config(path)
    assert "prise" in info.value.message
    path.write_text("not toml [")
    with pytest.raises(InvalidRequest, match="not valid TOML"):
        load_config(path)
    with pytest.raises(InvalidRequest, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_benchmark_flags_a_gpu_far_below_spec() -> None:
    gpus = [
        GpuInfo(
            index=0,
            uuid="GPU-a",
            name="NVIDIA GeForce RTX 4090",
            memory_total_mb=24564,
            tflops_fp32=82.58,
        ),
        GpuInfo(
            index=1,
            uuid="GPU-b",
            name="NVIDIA GeForce RTX 4090",
            memory_total_mb=24564,
            tflops_fp32=82.58,
        ),
    ]
    output = (
        'noise\n{"device": "cuda:0", "n": 8192, "reps": 40, "seconds": 2.0, '
        '"tflops": 61.2}\n{"device": "cuda:1", "n": 8192, "reps": 9, "seconds": 2.0, '
        '"tflops": 12.5}\n'
    )
    healthy, throttled = parse_results(output, gpus)
    assert healthy.gpu_uuid == "GPU-a" and not healthy.far_below_spec
    assert throttled.far_below_spec and throttled.efficiency is not None
    assert round(throttled.efficiency, 2) == 0.15
    (cpu,) = parse_results(
        '{"device": "cpu", "n": 1024, "reps": 3, "seconds": 2, "tflops": 0.05}', []
    )
    assert cpu.theoretical_tflops is None and not cpu.far_below_spec
