"""A client is built on a coordinator URL with its scheme: one without says how to write it,
before any request goes out."""

from __future__ import annotations

import pytest

from gpumarket.errors import InvalidRequest
from gpumarket.sdk import AdminClient, Client, ProviderClient


@pytest.mark.parametrize("kind", [Client, ProviderClient, AdminClient])
def test_a_url_without_its_scheme_says_how_to_write_it(kind: type[Client]) -> None:
    with pytest.raises(
        InvalidRequest, match=r"must start with http:// or https://, e.g. http://localhost:8000"
    ):
        kind("localhost:8000", "key")
    kind("https://market.example", "key").close()
