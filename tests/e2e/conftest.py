"""End-to-end fixtures: reuse the integration suite's coordinator, daemon and Docker fixtures."""

from tests.integration.provider.conftest import (  # noqa: F401 - fixtures re-exported
    coordinator,
    developer,
    docker_client,
    start_daemon,
)
