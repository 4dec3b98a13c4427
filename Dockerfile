# Builds the okta-dcr-worker binary; the same image runs `run`, `publish` and `okta-sim`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 okta-dcr
COPY --from=build /src/target/release/okta-dcr-worker /usr/local/bin/okta-dcr-worker
COPY examples /examples
USER okta-dcr
ENTRYPOINT ["okta-dcr-worker"]
CMD ["run"]
