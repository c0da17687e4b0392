# The `miroir` image the Helm chart (charts/miroir) and config/k8s/operator.yaml run:
#   docker build -t ghcr.io/miroir-search/miroir:0.1.0 .
# Two stages: the release build of the `miroir` binary, then a minimal runtime (glibc and
# CA certificates, no shell, no package manager) running it as a non-root user. The process
# writes only to the SQLite task store's directory (a volume) and /tmp (an emptyDir in the
# chart), so the root filesystem can be mounted read-only.
# tests/image.rs checks this file against the chart (binary, entrypoint, user, subcommands).

FROM rust:1-bookworm AS build
# aws-lc-rs (tenant-token signatures) is C built with cmake; rusqlite bundles SQLite (cc).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin miroir \
 && strip target/release/miroir \
 && ./target/release/miroir --version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/miroir /usr/local/bin/miroir
# The distroless `nonroot` user; the chart's podSecurityContext runs as the same uid/gid.
USER 65532:65532
# The Meilisearch API, /metrics, /health and /ready.
EXPOSE 7700
ENTRYPOINT ["/usr/local/bin/miroir"]
# The chart passes `operator …` as args; without args the image serves a mounted config file.
CMD ["serve", "--config", "/etc/miroir/config.yaml"]
