# twinshop developer commands. Each target is a thin wrapper around a script
# or cargo, so nothing here is magic.

# Every binary's release identity (README, "Release identity"): the
# checkout's commit unless the caller set TWINSHOP_COMMIT.
TWINSHOP_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
export TWINSHOP_COMMIT

.PHONY: run run-monolith test check services

## Run the microservices as local processes behind the edge on :8080 (Postgres/Redis/RabbitMQ on localhost: installed and started first when missing).
## Launcher options go in ARGS, e.g. make run ARGS="--replicas order=2,payment=2" (target/release/twinshop-launch --help).
run:
	scripts/check-services --install
	cargo build --release --bins
	target/release/twinshop-launch $(ARGS)

## The same, with the monolith instead of the three services (same edge, same port).
run-monolith:
	scripts/check-services --install
	cargo build --release --bins
	target/release/twinshop-launch --monolith $(ARGS)

## Run every test (against Postgres, Redis and RabbitMQ on localhost: installed and started first when missing).
test:
	scripts/check-services --install
	# The deploy tests render the manifests with `kubectl kustomize` (1.27+).
	scripts/install-kubectl
	# The end-to-end tests run the service binaries as processes: build them.
	cargo build --workspace --bins
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace $(if $(CI),--profile ci,); \
	else \
		cargo test --workspace --no-fail-fast; \
	fi

## The storefront's browser test (headless Chromium) against both builds; ARGS="--screenshots" refreshes docs/storefront.
.PHONY: browser-test
browser-test:
	cargo build --bins -p twinshop-launcher -p twinshop-user -p twinshop-payment -p twinshop-order -p twinshop-monolith
	scripts/browser-test $(ARGS)

## Formatting and lints, as CI runs them.
check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Install (Debian) and start the backing services.
services:
	scripts/install-services

# --- Kubernetes on kind (k8s/README.md) ---

.PHONY: kind kind-monolith kind-gitops kind-down check-k8s scan

## Build the images, create a kind cluster, deploy the microservices on it and wait until healthy: http://localhost:8080.
kind:
	scripts/kind up

## The same with the monolith instead (replaces the microservices if they are deployed).
kind-monolith:
	scripts/kind up --monolith

## The microservices through Argo CD (docs/concepts/gitops.md): GITOPS_REPO=<your fork> make kind-gitops
## installs Argo CD, creates the Secrets out of band, applies the Application, waits, then shows drift reverted.
kind-gitops:
	scripts/kind gitops

## Delete the kind cluster.
kind-down:
	scripts/kind down

## Validate the Kubernetes manifests offline (kustomize + Kubernetes 1.33 schemas + reference checks).
check-k8s:
	scripts/check-k8s

## The scanners, as CI runs them: checkov on every rendered overlay, hadolint, shellcheck (pinned, offline).
scan:
	scripts/scan
