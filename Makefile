# usersd: see README.md. Every tool is pinned in go.mod's tool block.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
BIN       := $(CURDIR)/.bin
PROTODEPS := $(CURDIR)/.protodeps
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Third-party .proto files come from these modules in the Go module cache.
PROTOVALIDATE_PROTO := github.com/bufbuild/protovalidate@v1.2.2
GOOGLEAPIS_PROTO    := github.com/grpc-ecosystem/grpc-gateway@v1.16.0

PLUGINS := google.golang.org/protobuf/cmd/protoc-gen-go \
           google.golang.org/grpc/cmd/protoc-gen-go-grpc \
           github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
           github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2

.PHONY: build generate protodeps lint buflint check-generated test test-short fuzz clean

## build: static release binary ./usersd (CGO off)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o usersd ./cmd/usersd

## protodeps: copy google/api and buf/validate protos from the module cache
protodeps:
	@rm -rf $(PROTODEPS) && mkdir -p $(PROTODEPS)/google/api $(PROTODEPS)/buf/validate
	@pv=$$(cd /tmp && GOFLAGS= $(GO) mod download -json $(PROTOVALIDATE_PROTO) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	  cp $$pv/proto/protovalidate/buf/validate/validate.proto $(PROTODEPS)/buf/validate/
	@ga=$$(cd /tmp && GOFLAGS= $(GO) mod download -json $(GOOGLEAPIS_PROTO) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	  cp $$ga/third_party/googleapis/google/api/{annotations,http}.proto $(PROTODEPS)/google/api/; \
	  mkdir -p $(PROTODEPS)/google/rpc && cp $$ga/third_party/googleapis/google/rpc/error_details.proto $(PROTODEPS)/google/rpc/
	@chmod -R u+w $(PROTODEPS)

## generate: regenerate the committed code from api/**/*.proto, and the OpenAPI 3.1 documents
generate: protodeps
	@mkdir -p $(BIN)
	@for p in $(PLUGINS); do $(GO) build -o $(BIN)/ $$p; done
	@rm -rf $(BIN)/openapiv2
	$(GO) tool buf generate
	$(GO) run ./internal/openapidoc/cmd/openapidoc -in $(BIN)/openapiv2 -out api

## buflint: lint the contracts
buflint: protodeps
	$(GO) tool buf lint

## check-generated: fail if regenerating changes anything
check-generated: generate
	@if [ -n "$$(git status --porcelain -- api)" ]; then \
	  echo "generated code is stale; run 'make generate' and commit:"; git status --porcelain -- api; exit 1; fi

# Each major version of the API, api/users/vN, has a committed baseline of its
# contract: a buf image of that version's files and their imports. The
# baseline alone scopes the check to its version; buf's --path would filter
# the baseline too, whose file names are module-relative (users/v1/...), and
# match nothing. api/breaking_test.go runs buf with BREAKING_FLAGS as well.
API_VERSIONS   := $(sort $(notdir $(wildcard api/users/v*)))
BASELINES      := api/baselines
BREAKING_FLAGS := --exclude-imports --error-format msvs

.PHONY: breaking baseline

## breaking: fail if any API version broke compatibility with its baseline (buf.yaml's breaking rules)
breaking: protodeps
	@rc=0; for v in $(API_VERSIONS); do \
	  base=$(BASELINES)/users-$$v.binpb; \
	  if [ ! -f "$$base" ]; then \
	    echo "breaking: users.$$v has no baseline; run 'make baseline API=$$v' and commit $$base"; rc=1; continue; fi; \
	  echo "breaking: users.$$v against $$base"; \
	  $(GO) tool buf breaking $(BREAKING_FLAGS) --against "$$base" || rc=1; \
	done; exit $$rc

## baseline: API=vN makes users.vN's current contract its baseline; only on purpose, as its own commit
ifneq ($(filter baseline,$(MAKECMDGOALS)),)
ifneq ($(words $(filter $(API),$(API_VERSIONS))) $(words $(API)),1 1)
$(error usage: make baseline API=<one of: $(API_VERSIONS)>)
endif
endif
baseline: protodeps
	@base=$(BASELINES)/users-$(API).binpb; \
	  echo "********************************************************************"; \
	  echo "*** Replacing $$base."; \
	  echo "*** 'make breaking' will accept every change made to users.$(API) so far:"; \
	  if [ ! -f "$$base" ]; then echo "*** (a new baseline)"; \
	  elif out=$$($(GO) tool buf breaking $(BREAKING_FLAGS) --against "$$base"); then echo "*** (none is breaking)"; \
	  else echo "$$out"; fi; \
	  echo "*** Commit the new baseline on its own, saying why clients may break."; \
	  echo "********************************************************************"
	@mkdir -p $(BASELINES)
	$(GO) tool buf build --path api/users/$(API) --exclude-source-info -o $(BASELINES)/users-$(API).binpb

## lint: formatting, vet, staticcheck, buf lint
lint: buflint
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## test: the whole suite (what CI runs); every Go benchmark runs once so they keep working
# -timeout: cmd/usersd's end-to-end tests take 8 to 9 minutes under the
# race detector on 2 cores, and internal/sqlite's about 10 alone (the
# conformance suite runs the C-transpiled SQLite instrumented), twice that
# when the two run side by side: beyond go test's default of 10 per
# package.
test: lint check-generated breaking deploy-check k8s-check
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...
	$(MAKE) fuzz
	$(MAKE) bench-check
	$(MAKE) clients-test

# The TypeScript clients (clients/typescript): their npm tools are pinned in
# its package.json and package-lock.json.
TS := clients/typescript

.PHONY: node-modules generate-clients clients-test

node-modules:
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error

## generate-clients: regenerate the TypeScript clients' code, from the v2 OpenAPI document (openapi-typescript) and the protos (protoc-gen-es)
generate-clients: protodeps node-modules
	@rm -rf $(TS)/src/gen
	cd $(TS) && npx openapi-typescript ../../api/users/v2/users.openapi.json -o src/gen/openapi/users-v2.ts
	$(GO) tool buf generate --template $(TS)/buf.gen.yaml

## clients-test: redocly lint of the OpenAPI documents, freshness of the clients' generated code, and the TypeScript HTTP, gRPC and webhook scenarios against a live usersd
clients-test: generate-clients
	@if [ -n "$$(git status --porcelain -- $(TS)/src/gen)" ]; then \
	  echo "the TypeScript clients' generated code is stale; run 'make generate-clients' and commit:"; \
	  git status --porcelain -- $(TS)/src/gen; exit 1; fi
	cd $(TS) && npm run --silent lint:openapi
	$(GO) build -o $(BIN)/usersd ./cmd/usersd
	cd $(TS) && npm run --silent build && USERSD_BIN=$(BIN)/usersd npm test

.PHONY: bench-check

## bench-check: vet and test the bench harness (its own module; make bench runs it)
bench-check:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

.PHONY: test-replicas

## test-replicas: three serve replicas and a gateway, real binaries on 127.0.0.2-4 and Postgres (USERSD_TEST_POSTGRES_URL): spread, rolling restart, kill -9 under load
test-replicas:
	USERSD_TEST_REPLICAS=1 CGO_ENABLED=1 $(GO) test -race -count=1 -run '^TestReplicas$$' -v ./cmd/usersd/

.PHONY: test-faults

## test-faults: fault tests on the real binary (USERSD_TEST_FAULTS=1; Postgres from USERSD_TEST_POSTGRES_URL, and clusters of their own made with /usr/lib/postgresql/*/bin): kill -9 mid-import with the default settings, on both stores and with two replicas; Postgres restart and failover to a synchronous standby under load
test-faults:
	USERSD_TEST_FAULTS=1 CGO_ENABLED=1 $(GO) test -race -count=1 -run '^TestFaults' -v ./cmd/usersd/

.PHONY: deploy-check

## deploy-check: offline checks of deploy/ (Dockerfile, compose, Prometheus config, alerts and their tests, dashboard)
deploy-check:
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/alerts.yaml
	cd deploy/prometheus && promtool test rules alerts_test.yaml
	@if command -v jq >/dev/null; then jq empty deploy/grafana/usersd.json; \
	  elif command -v python3 >/dev/null; then python3 -m json.tool deploy/grafana/usersd.json >/dev/null; \
	  else echo "deploy-check: no jq or python3; TestDeployMetricNames parses deploy/grafana/usersd.json"; fi
	@if docker compose version >/dev/null 2>&1; then \
	  docker compose -f deploy/docker-compose.yaml config --quiet && echo "deploy/docker-compose.yaml: docker compose config OK"; \
	elif python3 -c 'import yaml' 2>/dev/null; then \
	  python3 -c 'import os, sys, yaml; \
	    d = yaml.safe_load(open("deploy/docker-compose.yaml")); s = d["services"]; \
	    assert "version" not in d, "compose spec: no version key"; \
	    assert set(s) >= {"usersd", "postgres", "jaeger", "prometheus"}, sorted(s); \
	    b = s["usersd"]["build"]; assert os.path.isfile(os.path.join("deploy", b["context"], b["dockerfile"])), b; \
	    assert s["usersd"]["depends_on"]["postgres"]["condition"] == "service_healthy"; \
	    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"]); \
	    [os.stat(os.path.join("deploy", v.split(":")[0])) for v in s["prometheus"]["volumes"]]; \
	    print("deploy/docker-compose.yaml: YAML structure OK (no docker compose here)")'; \
	else echo "deploy-check: SKIPPED docker-compose.yaml: neither docker compose nor python3 PyYAML is available"; fi
	$(GO) test -count=1 -run '^TestDeploy' ./cmd/usersd/

.PHONY: k8s-check

## k8s-check: build deploy/k8s (base, overlays) with kustomize in-process and decode every object strictly into the Kubernetes API types (its own module, deploy/k8scheck)
k8s-check:
	cd deploy/k8scheck && $(GO) test -count=1 ./...

## fuzz: a short run of every fuzz target (seed corpus plus FUZZTIME new inputs)
# FUZZTIME is a count, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a bare "context deadline exceeded" when the clock
# runs out while a worker is mid-input (go.dev/issue/75804, fixed in Go 1.27).
# A count has no deadline to race. Pass FUZZTIME=5m for a long local run.
FUZZTIME ?= 100000x
fuzz:
	$(GO) test ./internal/users -run '^$$' -fuzz '^FuzzParseFilter$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/users -run '^$$' -fuzz '^FuzzDecodePageToken$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/users -run '^$$' -fuzz '^FuzzNormalizeAttributes$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/attrschema -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/attrschema -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME)

.PHONY: bench

## bench: the release binary against its ceilings (bare net/http, grpc-go, pgbench) on SQLite and Postgres, one table and the targets (BENCH_QUICK=1: a short run; BENCH_FLAGS: more flags of usersbench); not part of test, see docs/performance.md
bench:
	cd bench && $(GO) build -o $(BIN)/usersbench ./cmd/usersbench
	$(BIN)/usersbench -repo $(CURDIR) -ldflags '$(LDFLAGS)' $(BENCH_FLAGS)

.PHONY: soak

## soak: the release binary under a fixed-rate mixed load for SOAK_DURATION (10m) on each store (SOAK_STORE=sqlite|postgres|both); fails when RSS, heap, goroutines, fds, connections or latency grow; not part of test, see docs/operations.md
soak:
	cd bench && $(GO) build -o $(BIN)/usersoak ./cmd/usersoak
	$(BIN)/usersoak -repo $(CURDIR) -ldflags '$(LDFLAGS)'

clean:
	rm -rf $(BIN) $(PROTODEPS) usersd
