"""A job's image reference reaches the engine's pull API split as Docker splits it: a digest
pin pulls that digest (not a repository named ``python@sha256``), a registry's port is not
taken for a tag, and an image already held is not pulled at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest

from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.executor import DockerExecutor, JobRefused, pull_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("image", "repository", "tag"),
    [
        (f"python@{DIGEST}", "python", DIGEST),
        (f"ghcr.io/acme/trainer@{DIGEST}", "ghcr.io/acme/trainer", DIGEST),
        (f"registry:5000/team/repo@{DIGEST}", "registry:5000/team/repo", DIGEST),
        # a tag with a digest: the engine pulls the digest (the tag is dropped, as docker does)
        (f"python:3.12-slim@{DIGEST}", "python:3.12-slim", DIGEST),
        ("python:3.12-slim", "python", "3.12-slim"),
        ("registry:5000/repo:tag", "registry:5000/repo", "tag"),
        ("registry:5000/repo", "registry:5000/repo", "latest"),
        ("127.0.0.1:5123/pulls/busybox:1", "127.0.0.1:5123/pulls/busybox", "1"),
        ("repo", "repo", "latest"),
        ("docker.io/library/busybox", "docker.io/library/busybox", "latest"),
    ],
)
def test_a_reference_is_split_as_docker_splits_it(image: str, repository: str, tag: str) -> None:
    assert pull_reference(image) == (repository, tag)


class _Images:
    def __init__(self, held: set[str]) -> None:
        self.held = held

    def get(self, image: str) -> object:
        if image not in self.held:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return object()


class _Api:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.pulls: list[tuple[str, str]] = []

    def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> list[dict[str, Any]]:
        assert stream and decode
        self.pulls.append((repository, tag))
        return self.events


class _Engine:
    """The two corners of the docker SDK that ``ensure_image`` uses."""

    def __init__(
        self, held: set[str] | None = None, events: list[dict[str, Any]] | None = None
    ) -> None:
        self.images = _Images(held or set())
        self.api = _Api(events or [])


def _executor(tmp_path: Path, engine: _Engine, allowed: list[str] | None = None) -> DockerExecutor:
    config = ProviderConfig(work_dir=tmp_path / "work", allowed_images=allowed or ["*"])
    return DockerExecutor(config, client=engine, provider_id="prov_1")


def test_an_image_pinned_by_digest_is_pulled_by_that_digest(tmp_path: Path) -> None:
    engine = _Engine(events=[{"status": f"Digest: {DIGEST}"}])
    said: list[str] = []
    _executor(tmp_path, engine).ensure_image(f"python@{DIGEST}", said.append)
    assert engine.api.pulls == [("python", DIGEST)]
    assert said[0] == f"pulling image python@{DIGEST}\n"


def test_a_registry_port_is_not_a_tag(tmp_path: Path) -> None:
    engine = _Engine()
    _executor(tmp_path, engine).ensure_image("registry:5000/repo", lambda _: None)
    assert engine.api.pulls == [("registry:5000/repo", "latest")]


@pytest.mark.parametrize("image", [f"python@{DIGEST}", DIGEST, "python:3.12-slim"])
def test_an_image_the_engine_holds_is_not_pulled(tmp_path: Path, image: str) -> None:
    """Held under that reference: by digest, by image id, or by tag."""
    engine = _Engine(held={image})
    said: list[str] = []
    _executor(tmp_path, engine).ensure_image(image, said.append)
    assert engine.api.pulls == [] and said == []


def test_a_failed_digest_pull_names_the_reference_the_developer_gave(tmp_path: Path) -> None:
    engine = _Engine(events=[{"error": "manifest unknown", "errorDetail": {"message": "x"}}])
    with pytest.raises(JobRefused, match=f"cannot pull image 'python@{DIGEST}'") as refused:
        _executor(tmp_path, engine).ensure_image(f"python@{DIGEST}", lambda _: None)
    assert not refused.value.retryable
