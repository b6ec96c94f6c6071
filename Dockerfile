# syntax=docker/dockerfile:1
# tollgate container image: built in a Rust image, run on distroless (glibc,
# CA certificates, no shell), as a non-root user.
#
#   docker build -t tollgate .
#   docker run -p 4000:4000 -p 4001:4001 -v $PWD/tollgate.yaml:/etc/tollgate/tollgate.yaml:ro tollgate
#
# The config must listen on 0.0.0.0 to be reachable from outside the
# container (server.listen / server.admin_listen, or --listen flags).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# aws-lc-rs (TLS) builds C code.
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tollgate \
    && install -D -m 0755 target/release/tollgate /out/tollgate \
    && install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tollgate /usr/local/bin/tollgate
# SQLite store, request-log spool: writable by the non-root user.
COPY --from=build --chown=65532:65532 /out/data /var/lib/tollgate
WORKDIR /var/lib/tollgate
USER 65532:65532
EXPOSE 4000 4001
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/tollgate", "probe", "http://127.0.0.1:4000/health"]
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml"]
