# One Dockerfile for every twinshop binary; the build argument BIN picks which:
#
#   docker build --build-arg BIN=user-service    -t twinshop/user-service:dev .
#   docker build --build-arg BIN=payment-service -t twinshop/payment-service:dev .
#   docker build --build-arg BIN=order-service   -t twinshop/order-service:dev .
#   docker build --build-arg BIN=monolith        -t twinshop/monolith:dev .
#
# With the release identity (what scripts/kind passes; images are tagged
# with the commit):
#   docker build --build-arg BIN=user-service --build-arg TWINSHOP_COMMIT=$(git rev-parse HEAD) \
#     [--build-arg TWINSHOP_RELEASE=r2] -t twinshop/user-service:$(git rev-parse HEAD) .
#
#   docker run twinshop/user-service:dev            # serve (the default subcommand)
#   docker run twinshop/user-service:dev migrate    # the one-off admin step
#   docker run twinshop/user-service:dev healthcheck
#
# How it stays fast on a laptop (and on the legacy builder, which has no
# `RUN --mount` cache mounts; hence also no `# syntax=` line, which would
# make BuildKit pull a frontend image):
# - cargo-chef: the dependency graph (manifests + Cargo.lock, not our
#   sources) is cooked in its own layer, so editing a .rs file rebuilds only
#   the workspace crates.
# - The builder compiles all four binaries at once and does not depend on
#   BIN; BIN only selects what is copied into the runtime image. Building the
#   four images is one compile plus three cache hits.
# Nothing at build time needs a database (SQL is checked at run time by the
# store tests, not by sqlx macros), protoc (protox is pure Rust) or the JWT
# keys: migrations are embedded by `sqlx::migrate!`, the protos are read
# from proto/ by crates/contracts/build.rs.

# ---- bin-check: fail in seconds, not after the compile, on a bad BIN -------
# (The legacy builder builds every stage in order; BuildKit skips this one,
# and the same check in the builder still catches a bad BIN.)
FROM rust:1.95-slim-bookworm AS bin-check
ARG BIN
RUN case "$BIN" in \
      user-service|payment-service|order-service|monolith) ;; \
      *) echo "build argument BIN must be one of: user-service payment-service order-service monolith (got '$BIN')" >&2; exit 1 ;; \
    esac

# ---- chef: the toolchain plus cargo-chef (pinned) ---------------------------
FROM rust:1.95-slim-bookworm AS chef
ENV CARGO_TERM_COLOR=never \
    CARGO_NET_RETRY=5
RUN cargo install cargo-chef --locked --version 0.1.77 \
 && rm -rf /usr/local/cargo/registry /usr/local/cargo/git
WORKDIR /src

# ---- planner: the recipe (changes only when a manifest or the lock does) ----
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- builder: dependencies (cached layer), then our crates ------------------
FROM chef AS builder
# The packages whose binaries go into images. Cook and build must select
# the same packages so that features unify the same way and the cooked
# dependencies are reused (test-only crates are not built at all).
ENV TWINSHOP_PACKAGES="-p twinshop-user -p twinshop-payment -p twinshop-order -p twinshop-monolith"
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json $TWINSHOP_PACKAGES
COPY . .
# The release identity (crates/platform/src/build_info.rs): the commit and
# the release, compiled into each binary's main.rs (`--version`, first log
# line, `build_info` metric). There is no .git in the build context, so the
# caller passes them (scripts/kind does; unset, the binaries say
# `unknown`). Declared here, after the cooked dependencies, so a new
# identity reuses that layer and re-runs only this step (our crates
# compile again; outside Docker, where target/ persists, only the four
# main.rs would).
ARG TWINSHOP_COMMIT=""
ARG TWINSHOP_RELEASE=""
RUN cargo build --release --locked --bins $TWINSHOP_PACKAGES \
 && mkdir -p /out \
 && cp target/release/user-service target/release/payment-service \
       target/release/order-service target/release/monolith /out/
# Everything above is shared by the four images; only this step depends on
# BIN. The binary keeps its own name, and /usr/local/bin/twinshop points to
# it so that ENTRYPOINT and HEALTHCHECK are the same in every image.
ARG BIN
RUN case "$BIN" in \
      user-service|payment-service|order-service|monolith) ;; \
      *) echo "build argument BIN must be one of: user-service payment-service order-service monolith (got '$BIN')" >&2; exit 1 ;; \
    esac \
 && mkdir -p /select \
 && cp "/out/$BIN" "/select/$BIN" \
 && ln -s "$BIN" /select/twinshop

# ---- runtime: distroless cc (glibc, libgcc, CA certificates), non-root -----
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG BIN
ARG TWINSHOP_COMMIT=""
ARG TWINSHOP_RELEASE=""
# revision and version: the identity the binary reports, readable without
# running it (`docker image inspect`).
LABEL org.opencontainers.image.title="twinshop ${BIN}" \
      org.opencontainers.image.revision="${TWINSHOP_COMMIT}" \
      org.opencontainers.image.version="${TWINSHOP_RELEASE}" \
      org.opencontainers.image.description="twinshop ${BIN}: one shop built as microservices and as a monolith" \
      org.opencontainers.image.source="https://example.invalid/twinshop" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.vendor="twinshop" \
      org.twinshop.binary="${BIN}"
COPY --from=builder /select/ /usr/local/bin/
# 65532 = nonroot in distroless; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The binaries drain on SIGTERM within SHUTDOWN_TIMEOUT (default 20 s):
# give them stop_grace_period / terminationGracePeriodSeconds above that.
STOPSIGNAL SIGTERM
# Probes this process's own /readyz on its internal port
# ({USER,PAYMENT,ORDER,MONOLITH}_INTERNAL_PORT); no curl or shell needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/twinshop", "healthcheck"]
# Exec form: the binary is PID 1 and receives the signals itself. No CMD:
# no subcommand means serve; `docker run IMAGE migrate` passes a subcommand.
ENTRYPOINT ["/usr/local/bin/twinshop"]
