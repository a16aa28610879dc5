# syntax=docker/dockerfile:1
# verdict serve in a small image: built in a Rust image, run as a non-root
# user in Debian slim, data on a volume, health checked on the readiness probe.
#   docker build -t verdict .
#   docker run -p 8080:8080 -v verdict-data:/data -e VERDICT_ADMIN_TOKEN=change-me verdict

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin verdict \
    && cp target/release/verdict /usr/local/bin/verdict

FROM debian:bookworm-slim
# curl only for the health check.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin verdict \
    && mkdir -p /data \
    && chown verdict /data
COPY --from=build /usr/local/bin/verdict /usr/local/bin/verdict
USER 10001
WORKDIR /data
VOLUME ["/data"]
ENV VERDICT_LISTEN=0.0.0.0:8080 \
    VERDICT_DATA=/data/verdict.db \
    VERDICT_LOG_JSON=true
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["verdict"]
CMD ["serve"]
