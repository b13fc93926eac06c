# The gpumarket image: the coordinator (default command), the provider daemon and the CLI
# (gpumarket[all]: both extras).
# BASE_IMAGE lets a machine without registry access build from a locally imported Python base.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
# lets `docker image prune --filter label=org.opencontainers.image.title=gpumarket` find the
# untagged images earlier builds left behind
LABEL org.opencontainers.image.title="gpumarket"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY scripts/compose-provider.sh ./scripts/
RUN python -m pip install --no-cache-dir '.[all]' \
    && useradd --create-home --uid 10001 gpumarket \
    && mkdir -p /data && chown gpumarket /data
USER gpumarket
ENV GPUMARKET_DATA_DIR=/data
EXPOSE 8000
ENTRYPOINT ["gpumarket"]
CMD ["coordinator", "serve", "--host", "0.0.0.0", "--port", "8000"]
