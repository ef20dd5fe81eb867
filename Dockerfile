# syntax=docker/dockerfile:1
#
# The ringfence image: one binary on a small Debian runtime, running as a
# non-root user by default. The scan Job and DaemonSet that
# `ringfence deploy manifests` prints override the user to root (uid 0, no
# capabilities, read-only) because the host files the CIS checks read are
# readable by root only. See docs/fleet.md for building and pushing it.
#
#   docker build -t registry.example.com/ringfence:0.1.0 .

# Build stage: the Rust toolchain, pinned to an exact release on Debian 12 so
# the binary links against the same glibc as the runtime stage.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Only what the build reads: the workspace manifests and lockfile, the crates,
# and the data files the crates embed with include_str!.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY catalog ./catalog
COPY examples ./examples
COPY benchmarks ./benchmarks
COPY profiles ./profiles
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ringfence-cli \
    && install -D -m 0755 target/release/ringfence /out/ringfence

# Runtime stage: Debian 12 slim at a fixed point release; the binary needs
# only glibc and libgcc, which it provides.
FROM debian:12.12-slim
COPY --from=build /out/ringfence /usr/local/bin/ringfence
# nft and iptables-save/ip6tables-save: what `ringfence watch --source nft|iptables`
# runs (the DaemonSet of `deploy manifests --kind watch`); the CIS scan needs neither.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables iptables \
    && rm -rf /var/lib/apt/lists/*
# nobody-style unprivileged user; no home directory, no shell login needed.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ringfence"]
CMD ["--help"]
