# mudrock: build the release binary, ship it on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mudrock

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/mudrock mudrock
COPY --from=build /src/target/release/mudrock /usr/local/bin/mudrock
COPY examples /opt/mudrock/examples
USER mudrock
WORKDIR /opt/mudrock
ENTRYPOINT ["mudrock"]
