"""A developer's session in the terminal: login, offers search, submit --follow, list, show,
logs, outputs, events, cancel; against a real coordinator and provider daemon with Docker."""

from __future__ import annotations

import json
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from gpumarket.provider.daemon import ProviderDaemon
from tests.e2e.helpers import cli
from tests.integration.processes import CoordinatorProcess
from tests.integration.provider.conftest import BUSYBOX
from tests.integration.provider.registry import build_fresh_image, local_registry

pytestmark = pytest.mark.integration


def test_developer_session(
    coordinator: CoordinatorProcess, start_daemon: Callable[..., ProviderDaemon], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    out = cli(
        home, "login", "--coordinator", coordinator.url, "--wallet", str(home / "wallet.json")
    ).stdout
    assert "logged in as 0x" in out and (home / "profile.json").stat().st_mode & 0o777 == 0o600

    nothing = cli(home, "offers", "search", "gpu=A100", "price<=2").stdout
    assert "provider" in nothing  # an empty table before any provider exists
    start_daemon()
    found = json.loads(cli(home, "offers", "search", "cpu>=1", "--json").stdout)
    assert found["matches"] and found["matches"][0]["gpu_model"] == "CPU"
    why = json.loads(cli(home, "offers", "search", "gpu=A100", "vram>=40", "--json").stdout)
    assert why["matches"] == [] and why["summary"]["gpu_model"] == 1
    bad = cli(home, "offers", "search", "vram<=40", check=False)
    assert bad.returncode == 1 and "vram takes >=" in bad.stderr and "Traceback" not in bad.stderr

    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"image: {BUSYBOX}\nmax_price_per_hour: '1.00'\nresources: {{cpu: 1, memory: 128MB}}\n"
        "inputs: [{file: data}]\n"  # a local folder, next to the spec
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "n.txt").write_text("5\n")
    (tmp_path / "msg.txt").write_text("shipped\n")
    run = cli(
        home,
        "job",
        "submit",
        str(spec),
        "--command",
        "sh -c 'echo from the cli; cat /inputs/notes/msg.txt /inputs/data/n.txt; "
        "echo 7 > /outputs/seven; sleep 1'",
        "--input",
        f"{tmp_path / 'msg.txt'}:notes/msg.txt",
        "--follow",
    )
    assert "from the cli\nshipped\n5\n" in run.stdout and "COMMITTED" in run.stderr
    job_id = run.stdout.split()[1]

    waited = json.loads(cli(home, "job", "wait", job_id, "--json").stdout)
    assert waited["state"] == "COMMITTED" and waited["exit_code"] == 0
    late = cli(home, "job", "wait", job_id, "--state", "SETTLED", "--timeout", "1", check=False)
    assert late.returncode == 1 and "still COMMITTED after 1 s" in late.stderr
    listed = json.loads(cli(home, "job", "list", "--json").stdout)
    assert [j["id"] for j in listed["items"]] == [job_id]
    assert "COMMITTED" in cli(home, "job", "show", job_id).stdout
    assert cli(home, "job", "logs", job_id).stdout.startswith("from the cli\n")
    chunks = [
        json.loads(x) for x in cli(home, "job", "logs", job_id, "--json").stdout.split("\n") if x
    ]
    assert chunks[0]["stream"] == "stdout" and chunks[0]["data"].startswith("from the cli")
    target = tmp_path / "out.tar.gz"
    saved = json.loads(cli(home, "job", "outputs", job_id, "--dest", str(target), "--json").stdout)
    assert saved == {"path": str(target), "bytes": target.stat().st_size}
    with tarfile.open(target) as tar:
        seven = tar.extractfile("seven")
        assert seven is not None and seven.read() == b"7\n"
    folder = tmp_path / "unpacked"
    shown = cli(home, "job", "outputs", job_id, "--extract", str(folder)).stdout
    assert shown == f"unpacked 1 file(s) into {folder}\n  seven\n"
    assert (folder / "seven").read_bytes() == b"7\n"
    assert not Path(f"{job_id}-outputs.tar.gz").exists()  # no --dest: the archive is not kept
    assert "RUNNING" in cli(home, "job", "events", job_id).stdout
    assert "DISPUTED" in cli(home, "job", "challenge", job_id, "--reason", "wrong").stdout
    from tests.conftest import ADMIN_TOKEN

    token = ("--coordinator", coordinator.url, "--admin-token", ADMIN_TOKEN)
    waiting = json.loads(cli(home, "admin", "disputes", *token, "--json").stdout)["items"]
    assert [j["id"] for j in waiting] == [job_id]
    ruled = cli(home, "admin", "resolve", job_id, "--provider-right", *token).stdout
    assert "SETTLED" in ruled
    earned = json.loads(
        cli(home, "provider", "earnings", "--work-dir", str(tmp_path / "work"), "--json").stdout
    )
    assert float(earned["earned"]) > 0 and earned["completed_jobs"] == 1

    invalid = cli(home, "job", "submit", "--image", "", "--max-price", "1", check=False)
    assert invalid.returncode == 1 and "image" in invalid.stderr
    assert "Traceback" not in invalid.stderr

    slow = cli(
        home,
        "job",
        "submit",
        "--image",
        BUSYBOX,
        "-c",
        "sleep 300",
        "--max-price",
        "1",
        "--memory",
        "128MB",
    ).stdout.split()[1]
    assert json.loads(cli(home, "job", "cancel", slow, "--json").stdout)["state"] == "CANCELLED"
    ended = cli(home, "job", "wait", slow, check=False)  # over, but without a result
    assert ended.returncode == 1 and f"{slow}: CANCELLED" in ended.stdout
    gone = cli(home, "job", "show", "job_doesnotexist", check=False)
    assert gone.returncode == 1 and "no job" in gone.stderr


def test_cli_without_login_says_how(tmp_path: Path) -> None:
    result = cli(tmp_path, "job", "list", check=False)
    assert result.returncode == 1 and "gpumarket login" in result.stderr


def test_operator_session(
    coordinator: CoordinatorProcess, start_daemon: Callable[..., ProviderDaemon], tmp_path: Path
) -> None:
    from tests.conftest import ADMIN_TOKEN

    home = tmp_path / "home"
    daemon = start_daemon()
    token = ("--coordinator", coordinator.url, "--admin-token", ADMIN_TOKEN)
    listed = json.loads(cli(home, "admin", "providers", *token, "--json").stdout)
    while not listed:
        listed = json.loads(cli(home, "admin", "providers", *token, "--json").stdout)
    provider_id = listed[0]["id"]
    assert daemon.provider_id == provider_id
    banned = cli(home, "admin", "ban", provider_id, "--reason", "testing bans", *token, "--json")
    assert json.loads(banned.stdout) == {
        "provider_id": provider_id,
        "banned": True,
        "reason": "testing bans",
    }
    assert json.loads(cli(home, "admin", "providers", *token, "--json").stdout)[0]["banned"]
    cli(home, "admin", "unban", provider_id, *token)
    stats = cli(home, "admin", "stats", *token).stdout
    assert "providers: 1 online of 1" in stats
    assert json.loads(cli(home, "admin", "jobs", *token, "--json").stdout)["items"] == []
    refused = cli(
        home,
        "admin",
        "stats",
        "--coordinator",
        coordinator.url,
        "--admin-token",
        "wrong",
        check=False,
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr


def test_follow_shows_the_image_pull(
    coordinator: CoordinatorProcess,
    start_daemon: Callable[..., ProviderDaemon],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    source = build_fresh_image(
        docker_client, BUSYBOX, f"gpumarket-test/pullable:{uuid.uuid4().hex[:12]}", 2_000_000
    )
    with local_registry(
        docker_client, {"e2e/busybox:1": source}, bytes_per_second=1_000_000, forget_sources=True
    ) as registry:
        home = tmp_path / "home"
        cli(home, "login", "--coordinator", coordinator.url, "--wallet", str(home / "wallet.json"))
        start_daemon()
        image = registry.ref("e2e/busybox:1")
        run = cli(
            home,
            "job",
            "submit",
            "--image",
            image,
            "--command",
            "wc -c /payload",
            "--cpu",
            "1",
            "--max-price",
            "1",
            "--follow",
        )
        # like `docker run`: the exit status is the command's, or 1 when there was no result
        failing = ("--cpu", "1", "--max-price", "1", "--follow")
        crashed = cli(
            home, "job", "submit", "--image", image, "-c", "sh -c 'exit 3'", *failing, check=False
        )
        missing = registry.ref("e2e/busybox:nope")
        unpulled = cli(
            home, "job", "submit", "--image", missing, "-c", "true", *failing, check=False
        )
    # without a terminal the bar becomes one line per change, so a log of the session says
    # that the wait was the image
    assert f": pulling {image} (" in run.stderr and "layers)" in run.stderr
    assert "2000000 /payload" in run.stdout and "COMMITTED" in run.stderr
    assert crashed.returncode == 3 and "COMMITTED, exit code 3" in crashed.stderr
    assert unpulled.returncode == 1 and "FAILED" in unpulled.stderr
    assert (
        f"cannot pull image '{missing}'" in unpulled.stderr and "Traceback" not in unpulled.stderr
    )
