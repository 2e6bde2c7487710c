# A stand-in for the registry's postgres:15 where no registry can be reached
# (scripts/test-docker.sh): Debian's PostgreSQL 15 with the few settings of
# the official image that deploy/compose.yaml uses (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, PGPORT, data in /var/lib/postgresql/data).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data
COPY scripts/docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["postgres-entrypoint"]
