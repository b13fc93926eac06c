"""Typed Python client of the coordinator API, for developers, providers and operators."""

from gpumarket.sdk.client import AdminClient, Client, ProviderClient, register_wallet

__all__ = ["AdminClient", "Client", "ProviderClient", "register_wallet"]
