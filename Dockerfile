# litewarden's container image: `docker build -t litewarden:local .`
#
# Two stages: the release binary is built with the Rust toolchain (SQLite is
# bundled, so nothing else is needed), then copied with the shipped
# migrations into a small Debian runtime that runs as an unprivileged user
# (uid/gid 10001, the ids deploy/kubernetes.yaml runs it as).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin litewarden

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 litewarden \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin litewarden
COPY --from=build /src/target/release/litewarden /usr/local/bin/litewarden
COPY migrations /migrations
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/litewarden"]
CMD ["run", "--log-format", "json"]
