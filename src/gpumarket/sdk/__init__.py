"""Typed Python client of the coordinator API, for developers, providers and operators."""

from gpumarket.sdk.client import AdminClient, Client, ProviderClient, register_wallet
from gpumarket.sdk.inputs import local_inputs
from gpumarket.sdk.outputs import extract_outputs

__all__ = [
    "AdminClient",
    "Client",
    "ProviderClient",
    "extract_outputs",
    "local_inputs",
    "register_wallet",
]
