# Exosphere Alerts — the two commands: `make run` and `make test`.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/exo-alerts
GOLANGCI_VERSION := v2.15.0
GOLANGCI := $(shell $(GO) env GOPATH)/bin/golangci-lint
# The version `exo-alerts version` prints and the image is labelled and
# tagged with; the image's timestamps are the last commit's.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
PLATFORM ?= linux/$(shell $(GO) env GOARCH)
LDFLAGS := -X main.version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/exo-alerts
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/exo-alerts

.PHONY: image
image: ## build the container image without Docker: bin/exo-alerts-oci (OCI layout), bin/exo-alerts-image.tar (docker load); PLATFORM=linux/arm64
	cd tools/mkimage && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run . -src ../.. \
		-version "$(VERSION)" -revision "$(REVISION)" -platform "$(PLATFORM)" \
		-oci "$(CURDIR)/bin/exo-alerts-oci" -tar "$(CURDIR)/bin/exo-alerts-image.tar"

.PHONY: run
run: build ## run everything in one process on embedded defaults (exo-alerts dev)
	./$(BIN) dev $(ARGS)

.PHONY: test
test: ## start real PostgreSQL + Kafka, run every test with -race, stop them
	@deploy/local/test.sh

.PHONY: test-short
test-short: ## run the tests against services that are already up (services-up)
	@eval "$$(deploy/local/services.sh env)" && $(GO) test -race -shuffle=on -count=1 ./...

.PHONY: drill
drill: build ## fault drills on private services: kill -9, broker and Postgres stopped 60 s, rolling SIGTERM (ARGS=--short: ~3 min)
	$(GO) build -o bin/exo-drill ./cmd/exo-drill
	./bin/exo-drill $(ARGS)

.PHONY: services-up
services-up: ## start the local PostgreSQL and Kafka (idempotent)
	@deploy/local/services.sh up

.PHONY: services-down
services-down: ## stop the local PostgreSQL and Kafka
	@deploy/local/services.sh down

.PHONY: bench
bench: ## issue #13's benchmarks as one table: figures, comparators measured in the same run, ratios, targets (3-6 min; bin/bench/; ARGS='-only Engine')
	@deploy/local/services.sh up
	@eval "$$(deploy/local/services.sh env)" && $(GO) run ./tools/benchtable $(ARGS)

.PHONY: bench-all
bench-all: ## run every benchmark of every package with the default -benchtime (against the local services)
	@deploy/local/services.sh up
	@eval "$$(deploy/local/services.sh env)" && $(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: openapi
openapi: ## regenerate docs/openapi.json from the server (against the local services)
	@deploy/local/services.sh up
	@eval "$$(deploy/local/services.sh env)" && UPDATE_OPENAPI=1 $(GO) test -count=1 -run TestOpenAPIIsCommitted ./controlplane/

.PHONY: env-docs
env-docs: ## regenerate the environment variables' tables (README, docs/operations.md) from internal/config/vars.go
	UPDATE_ENV_DOCS=1 $(GO) test -count=1 -run TestEnvDocsAreCommitted ./internal/config/

.PHONY: lint
lint: $(GOLANGCI) ## run golangci-lint
	$(GOLANGCI) run ./...

$(GOLANGCI):
	GOFLAGS=-buildvcs=false $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

.PHONY: fmt
fmt: ## gofmt the tree
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: clean
clean: ## remove build output and stop and purge the local services
	rm -rf bin
	deploy/local/services.sh down --purge
