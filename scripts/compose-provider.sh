#!/bin/sh
# The provider service of docker-compose.yml: a wallet kept in the provider's folder, funded and
# staked on the dev chain the first time, then `gpumarket provider run`.
set -eu
home=${GPUMARKET_PROVIDER_HOME:-/var/lib/gpumarket-provider}
wallet="$home/wallet.json"
mkdir -p "$home/work"
if [ ! -f "$wallet" ]; then
  gpumarket wallet new --path "$wallet"
fi
address=$(gpumarket wallet show --path "$wallet")
# GPUMARKET_PROVIDER_CONTAINER_LABEL=key=value: one extra label on every job container
labels=""
if [ -n "${GPUMARKET_PROVIDER_CONTAINER_LABEL:-}" ]; then
  labels="container_labels = { \"${GPUMARKET_PROVIDER_CONTAINER_LABEL%%=*}\" = \"${GPUMARKET_PROVIDER_CONTAINER_LABEL#*=}\" }"
fi
cat > "$home/provider.toml" <<TOML
coordinator_url = "$GPUMARKET_COORDINATOR"
wallet = "$wallet"
work_dir = "$home/work"
cpu_price_per_hour = "$GPUMARKET_CPU_PRICE"
$labels
TOML
stake=$(gpumarket wallet balance --path "$wallet" --json | python -c 'import json,sys; print(json.load(sys.stdin)["stake"])')
if [ "$stake" = "0.000000" ]; then
  gpumarket chain fund "$address" --rpc-url "$GPUMARKET_CHAIN_RPC_URL" \
    --deployment "$GPUMARKET_CHAIN_DEPLOYMENT" --amount 1000
  gpumarket provider stake "$GPUMARKET_PROVIDER_STAKE" --config "$home/provider.toml"
fi
exec gpumarket provider run --config "$home/provider.toml"
