# The image `restore-drill schedule kubernetes` names: the tool and the clients its
# engines call. Not built on the development machines (no container runtime there);
# see docs/fleet.md.
#
#   docker build -t restore-drill:0.1.0 .
#
# Debian bookworm's postgresql-client is version 15: pg_dump must be at least the
# server's version, so for newer servers add the PostgreSQL apt repository
# (apt.postgresql.org) and install postgresql-client-17 instead.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin restore-drill

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates postgresql-client mariadb-client sqlite3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 drill \
 && useradd --system --uid 10001 --gid drill --home-dir /work --no-create-home drill \
 && mkdir -p /work /artifacts /drills \
 && chown drill:drill /work /artifacts
COPY --from=build /src/target/release/restore-drill /usr/local/bin/restore-drill
USER 10001:10001
ENV TMPDIR=/work
WORKDIR /work
ENTRYPOINT ["restore-drill"]
CMD ["--help"]
