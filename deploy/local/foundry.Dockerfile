# anvil and cast for docker-compose.yml on a machine that cannot pull the foundry image: the
# binaries npm installed under contracts/node_modules, on the locally built Debian base.
ARG BASE_IMAGE=gpumarket-local/debian:12
FROM ${BASE_IMAGE}
COPY anvil cast /usr/local/bin/
EXPOSE 8545
ENTRYPOINT ["anvil"]
