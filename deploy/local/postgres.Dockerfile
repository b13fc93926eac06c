# PostgreSQL for docker-compose.yml on a machine that cannot pull postgres:16: Debian's
# PostgreSQL 15 on the locally built Debian base (scripts/build-compose-images.sh).
ARG BASE_IMAGE=gpumarket-local/debian:12
FROM ${BASE_IMAGE}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["sh", "/usr/local/bin/postgres-entrypoint.sh"]
