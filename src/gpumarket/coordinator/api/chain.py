"""The market contract this coordinator settles on (public: wallets need it to deposit)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from gpumarket.coordinator.deps import SettlementDep
from gpumarket.protocol import ChainInfo

router = APIRouter(prefix="/v1/chain", tags=["chain"])


@router.get("", response_model=ChainInfo)
async def chain_info(settlement: SettlementDep) -> ChainInfo:
    """Chain id, RPC URL, market and token addresses, and the terms new jobs get; 404 when
    this coordinator keeps accounts off-chain, 503 (``service_unavailable``) while the chain's
    RPC endpoint does not answer (the terms are read from the contract)."""
    return await run_in_threadpool(settlement.info)
