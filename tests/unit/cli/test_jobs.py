"""What a developer's commands print and accept: `job show` with the challenge deadline, a
challenge step without a "(block ?)", a refunded job that cost nothing; `login --json`; a GPU
model no provider could ever match refused before the job waits for ever; a YAML `command`
written as one string, as `-c` takes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gpumarket.cli import jobs
from gpumarket.cli.main import typer_app
from gpumarket.errors import InvalidRequest
from gpumarket.protocol import Credential, JobSpec, JobState, JobView, Offer, Role
from tests.unit.cli.test_submit_spec import spec_of


def view(state: JobState, **fields: Any) -> JobView:
    now = datetime.now(UTC)
    return JobView.model_validate(
        {
            "id": "job_1",
            "state": state,
            "spec": {"image": "busybox", "max_price_per_hour": "1"},
            "owner": "dev",
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )


class FakeSdk:
    """The developer's client: one job to show, an offer book, and the specs submitted."""

    def __init__(self, job: JobView | None = None, offered: tuple[str, ...] = ()) -> None:
        self.job = job
        self.offered = offered
        self.submitted: list[JobSpec] = []

    def get(self, job_id: str, explain: bool = True) -> JobView:
        assert self.job is not None
        return self.job

    def offers(self, limit: int = 100) -> list[Offer]:
        return [
            Offer(
                provider_id="prv_1",
                gpu_model=model,
                vram_mb=81920,
                tflops=60.0,
                total_count=1,
                free_count=1,
                price_per_hour="2",
                region=None,
                reputation=1.0,
            )
            for model in self.offered
        ]

    def submit(self, spec: JobSpec) -> JobView:
        self.submitted.append(spec)
        return view(JobState.QUEUED)


def run(sdk: FakeSdk, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(jobs, "client", lambda coordinator: sdk)
    return CliRunner().invoke(typer_app, list(args))


def test_show_gives_the_challenge_deadline_and_no_unknown_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deadline = datetime.now(UTC) + timedelta(minutes=30, seconds=5)
    job = view(
        JobState.COMMITTED,
        cost="0.5",
        challenge_deadline=deadline,
        chain=[
            {"step": "commit", "tx_hash": "0xaa", "block": 7, "at": datetime.now(UTC)},
            {"step": "challenge", "tx_hash": "0xbb", "block": None, "at": datetime.now(UTC)},
        ],
    )
    result = run(FakeSdk(job), monkeypatch, "job", "show", "job_1")
    assert result.exit_code == 0, result.output
    local = f"{deadline.astimezone():%Y-%m-%d %H:%M:%S}"
    assert f"challenge window: open until {local}" in result.output
    assert "(30 min " in result.output and "gpumarket job challenge job_1" in result.output
    assert "0xaa (block 7)" in result.output
    assert "block ?" not in result.output and "0xbb" in result.output


def test_a_closed_window_says_when_it_closed() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    line = jobs._challenge_line(view(JobState.SETTLED, challenge_deadline=past))
    assert line.startswith("challenge window: closed at ")


def test_a_refunded_job_cost_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    refunded = view(JobState.REFUNDED, cost="0.5", exit_code=0)
    assert jobs._ending(refunded) == "job_1: REFUNDED, exit code 0, cost 0 (refunded)"
    result = run(FakeSdk(refunded), monkeypatch, "job", "show", "job_1")
    assert "0 (refunded)" in result.output and "0.5" not in result.output


def test_login_answers_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUMARKET_HOME", str(tmp_path))
    monkeypatch.setenv("GPUMARKET_WALLET_PASSWORD", "pw")

    def register(url: str, account: Any, role: Role) -> Credential:
        return Credential(api_key="gmk_dev_x", role=role, account_id="dev_1", address="0xabc")

    monkeypatch.setattr("gpumarket.sdk.register_wallet", register)
    keystore = tmp_path / "wallet.json"
    result = CliRunner().invoke(typer_app, ["login", "--wallet", str(keystore), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["address"] == "0xabc" and answer["created_wallet"] is True
    assert answer["profile"] == str(tmp_path / "profile.json") and "api_key" not in answer


@pytest.mark.parametrize(
    ("gpu", "hint"),
    [("2xA100", "write A100:2"), ("any:1", "leave the model out"), ("B9000", "known models")],
)
def test_an_unknown_gpu_model_is_refused_with_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, gpu: str, hint: str
) -> None:
    sdk = FakeSdk(offered=("RTX4090",))
    args = ["job", "submit", "--image", "busybox", "-c", "true", "--max-price", "1", "--gpu", gpu]
    result = run(sdk, monkeypatch, *args)
    assert isinstance(result.exception, InvalidRequest)
    message = result.exception.message
    assert "unknown GPU model" in message and hint in message
    assert "A100, A10G" in message and "--allow-unknown-gpu" in message
    assert sdk.submitted == []


def test_an_unknown_model_is_accepted_when_offered_or_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["job", "submit", "--image", "busybox", "-c", "true", "--max-price", "1"]
    sdk = FakeSdk(offered=("B9000",))
    assert run(sdk, monkeypatch, *base, "--gpu", "B9000:1").exit_code == 0
    other = FakeSdk()
    assert run(other, monkeypatch, *base, "--gpu", "X1:1", "--allow-unknown-gpu").exit_code == 0
    assert [s.resources.gpu.models for s in sdk.submitted + other.submitted if s.resources.gpu]


def test_a_yaml_command_string_is_split_as_with_c(tmp_path: Path) -> None:
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(
        "image: busybox\nmax_price_per_hour: '1'\ncommand: python train.py --name 'a b'\n"
    )
    assert spec_of(spec_file).command == ["python", "train.py", "--name", "a b"]
    spec_file.write_text("image: busybox\nmax_price_per_hour: '1'\ncommand: echo 'open\n")
    with pytest.raises(InvalidRequest, match=r"job.yaml: command: cannot split"):
        spec_of(spec_file)
