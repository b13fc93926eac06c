"""End-to-end fixtures: reuse the integration suite's coordinator, daemon and Docker fixtures,
and the on-chain market the money tests share."""

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.money import Session, money_session
from tests.integration.provider.conftest import (  # noqa: F401 - fixtures re-exported
    coordinator,
    developer,
    docker_client,
    start_daemon,
)


@pytest.fixture
def session(
    tmp_path: Path,
    docker_client: docker.DockerClient,  # noqa: F811 - the fixture re-exported above
    request: pytest.FixtureRequest,
) -> Iterator[Session]:
    """An anvil devnet, a coordinator settling on it and CLI homes (tests/e2e/money.py); a
    ``coordinator_env({...})`` marker adds coordinator settings."""
    marker = request.node.get_closest_marker("coordinator_env")
    yield from money_session(
        tmp_path, docker_client, request, extra_env=marker.args[0] if marker else None
    )
