# daemonset-guard: build, test and run the DaemonSet admission webhook.
# `make help` lists the targets.

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS_MOD := e2e/tools

# The control plane the tests run, built from Go modules by the tools module:
# its go.mod pins the version, and nothing is downloaded from elsewhere.
K8S_VERSION = $(shell cd $(TOOLS_MOD) && $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_LDFLAGS = -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
              -X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(K8S_VERSION:v%=%))) \
              -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION:v%=%)))
CONTROL_PLANE := $(BIN)/kube-apiserver $(BIN)/etcd
CLUSTER_TOOLS := $(CONTROL_PLANE) $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kubectl $(BIN)/kwok $(BIN)/kwokctl
KWOK_MOD      := $(TOOLS_MOD)/kwok
# The helm CLI that make test lints, renders, packages and installs the chart
# with, built from its Go module at the version its go.mod pins.
HELM_MOD      := $(TOOLS_MOD)/helm
HELM_VERSION   = $(shell cd $(HELM_MOD) && $(GO) list -m -f '{{.Version}}' helm.sh/helm/v4)
CHART_DIR     := manifests/charts/daemonset-guard
# cert-manager's controllers and cainjector, built from its root module for
# the test that runs the cert-manager variant against them.
CERT_MANAGER_MOD := $(TOOLS_MOD)/certmanager
CLUSTER_STATE := $(CURDIR)/.cluster

# The container image, and the overlay `make deploy` applies.
IMG            ?= ghcr.io/daemonset-guard/daemonset-guard:v0.1.0
CONTAINER_TOOL ?= docker
OVERLAY        ?= cert-manager
KIND           ?= kind
KIND_CLUSTER   ?= daemonset-guard-e2e
CERT_MANAGER_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/cert-manager/cert-manager)
# The oldest cert-manager the cert-manager overlay supports: from v1.19 its
# cainjector keeps a CA being renewed in the caBundle beside the new one;
# older ones replace it, and replicas still serving the old certificate are
# refused for a while by a webhook that fails closed.
CERT_MANAGER_MIN_VERSION := v1.19.0

# The fuzz targets (package:name); make test runs each briefly, make fuzz longer.
# make test bounds them by executions, not time: Go 1.26's fuzz coordinator can
# fail a target with a bare "context deadline exceeded" when a -fuzztime
# duration runs out while a worker is busy (golang/go#75804, fixed in Go 1.27),
# and a count has no deadline to race.
FUZZ_TARGETS := webhook:FuzzAdmissionReview webhook:FuzzOnePassAnswersAsControllerRuntime webhook/rules:FuzzSelectorMatchesTemplate \
                webhook/rules:FuzzTolerated webhook/rules:FuzzMaxUnavailable webhook/rules:FuzzParsePolicy \
                webhook/inventory:FuzzPlacement
FUZZTIME     ?= 60s
FUZZ_SMOKE   := 20000x

# make soak: how long, how many requests per second on each webhook path, and
# how often to sample.
SOAK_DURATION ?= 5m
SOAK_RATE     ?= 300
SOAK_INTERVAL ?= 30s

# Where `make run` finds its cluster, certificate and policy.
KUBECONFIG      ?= $(HOME)/.kube/config
CERT_DIR        ?= /tmp/k8s-webhook-server/serving-certs
POLICY_FILE     ?=
RUN_ARGS        ?=

# make bench-api and bench-memory append their results, as rows of the
# README's bench table, to BENCH_ROWS when it is set; bench-memory creates
# BENCH_NODES Nodes.
BENCH_ROWS  ?=
BENCH_NODES ?= 5000
BENCH_DAEMONSETS ?= 1000
# kwok renews each Node's lease and reports its status BENCH_HEARTBEAT_FACTOR
# times slower than a kubelet (kwokctl's default, 5): every 50 s. Each
# status report is a Node update that the webhook decodes, so it is part of
# what is measured. At 50,000 Nodes that is 2,000 writes a second, under
# which two cores never settled the Nodes here: use 30 there, a report every
# 5 minutes, as a kubelet reports a status that did not change.
BENCH_HEARTBEAT_FACTOR ?= 5

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/daemonset-guard, and the same binary as the kubectl plugin bin/kubectl-daemonset_guard (put bin/ on PATH for kubectl daemonset-guard).
	$(GO) build -o $(BIN)/daemonset-guard ./cmd/daemonset-guard
	ln -f $(BIN)/daemonset-guard $(BIN)/kubectl-daemonset_guard

.PHONY: run
run: build ## Run the webhook against KUBECONFIG with certificates from CERT_DIR.
	$(BIN)/daemonset-guard --kubeconfig $(KUBECONFIG) --webhook-cert-dir $(CERT_DIR) \
		$(if $(POLICY_FILE),--policy-file $(POLICY_FILE)) --zap-devel $(RUN_ARGS)

.PHONY: test
test: lint control-plane $(BIN)/kubectl $(BIN)/helm $(BIN)/cert-manager-controllers ## Lint; unit, handler and API-server integration tests; benchmark and fuzz smoke runs; the e2e suite on the local cluster.
	KUBEBUILDER_ASSETS=$(BIN) $(GO) test -race -count=1 ./...
	$(GO) test -run '^$$' -bench . -benchtime 100x ./...
	$(MAKE) fuzz FUZZTIME=$(FUZZ_SMOKE)
	$(MAKE) test-e2e-local

.PHONY: bench
bench: cluster-tools build localwebhook ## Measure everything (handler CPU vs baselines, API-server latency vs CEL policies, memory and HTTPS load at BENCH_NODES nodes) into one table, also written to the README. Minutes; not part of make test.
	$(GO) build -o $(BIN)/apilatency ./e2e/apilatency
	$(GO) build -o $(BIN)/memprobe ./e2e/memprobe
	$(GO) build -o $(BIN)/loadgen ./e2e/loadgen
	BENCH_NODES=$(BENCH_NODES) BENCH_DAEMONSETS=$(BENCH_DAEMONSETS) hack/bench.sh

.PHONY: bench-load
bench-load: cluster-tools build localwebhook ## HTTPS load at 1, 8 and 64 keep-alive connections against the webhook on the local cluster, pinned to one core.
	$(GO) build -o $(BIN)/loadgen ./e2e/loadgen
	WEBHOOK_CPUS=0 e2e/local-cluster.sh up
	@status=0; \
	for path in validate mutate; do \
		echo ">> $$path"; \
		taskset -c 1 $(BIN)/loadgen --url https://127.0.0.1:19443/$$path-apps-v1-daemonset --ca $(CLUSTER_STATE)/certs/ca.crt --duration 10s || status=$$?; \
	done; \
	e2e/local-cluster.sh down; exit $$status

.PHONY: bench-api
bench-api: cluster-tools build localwebhook ## DaemonSet create latency through the local cluster's API server: no admission, daemonset-guard, CEL admission policies.
	$(GO) build -o $(BIN)/apilatency ./e2e/apilatency
	@status=0; \
	{ e2e/local-cluster.sh up && \
	  $(BIN)/apilatency --kubeconfig $(CLUSTER_STATE)/kubeconfig $(if $(BENCH_ROWS),--rows $(BENCH_ROWS)); } || status=$$?; \
	e2e/local-cluster.sh down; exit $$status

# kube-controller-manager lifts the not-ready taint of each new Node through
# its API rate limit, 20 a second by default: raised, 5,000 Nodes settle in a
# minute or two instead of five to ten. The webhook is restarted once they
# have, so that it lists them at start-up as the two cache processes it is
# compared with do.
.PHONY: bench-memory
bench-memory: cluster-tools build localwebhook ## Memory of the webhook with BENCH_NODES (5000) realistic Nodes and BENCH_DAEMONSETS (1000) DaemonSets, beside caches of whole and of stripped Nodes and DaemonSets.
	$(GO) build -o $(BIN)/memprobe ./e2e/memprobe
	@status=0; \
	{ KWOKCTL_ARGS="--heartbeat-factor $(BENCH_HEARTBEAT_FACTOR) --extra-args kube-controller-manager=kube-api-qps=1000 --extra-args kube-controller-manager=kube-api-burst=1000" \
	  e2e/local-cluster.sh up && \
	  $(BIN)/memprobe nodes --kubeconfig $(CLUSTER_STATE)/kubeconfig --count $(BENCH_NODES) && \
	  $(BIN)/memprobe daemonsets --kubeconfig $(CLUSTER_STATE)/kubeconfig --count $(BENCH_DAEMONSETS) && \
	  e2e/local-cluster.sh restart-webhook && \
	  $(BIN)/memprobe measure --kubeconfig $(CLUSTER_STATE)/kubeconfig --webhook-pid-file $(CLUSTER_STATE)/webhook.pid \
	    $(if $(BENCH_ROWS),--rows $(BENCH_ROWS)); } || status=$$?; \
	e2e/local-cluster.sh down; exit $$status

.PHONY: soak
soak: cluster-tools build localwebhook ## A bounded soak (SOAK_DURATION, 5m) at SOAK_RATE (300) req/s on each webhook path: fails on errors or on memory or goroutines that keep growing. Not part of make test.
	$(GO) build -o $(BIN)/loadgen ./e2e/loadgen
	WEBHOOK_CPUS=0 e2e/local-cluster.sh up
	@status=0; \
	taskset -c 1 $(BIN)/loadgen --url https://127.0.0.1:19443/mutate-apps-v1-daemonset --ca $(CLUSTER_STATE)/certs/ca.crt \
		--rate $(SOAK_RATE) --duration $(SOAK_DURATION) --connections 8 --interval $(SOAK_INTERVAL) > $(BIN)/soak-mutate.txt 2>&1 & mutate=$$!; \
	taskset -c 1 $(BIN)/loadgen --url https://127.0.0.1:19443/validate-apps-v1-daemonset --ca $(CLUSTER_STATE)/certs/ca.crt \
		--policy-file $(CLUSTER_STATE)/policy.yaml --rate $(SOAK_RATE) --duration $(SOAK_DURATION) --connections 8 --interval $(SOAK_INTERVAL) || status=$$?; \
	wait $$mutate || status=$$?; \
	echo ">> mutate (the table above is validate)"; cat $(BIN)/soak-mutate.txt; \
	e2e/local-cluster.sh down; exit $$status

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (60s); crashers land in testdata/fuzz and become regression tests.
	@for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target##*:}; \
		echo ">> fuzzing $$name in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	done

.PHONY: lint
lint: ## Check formatting and run go vet.
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	cd $(CERT_MANAGER_MOD) && $(GO) vet ./...

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build kube-apiserver and etcd into bin/ from Go modules (minutes the first time, cached after).

$(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kubectl: $(TOOLS_MOD)/go.mod $(TOOLS_MOD)/go.sum
	@e2e/timed.sh "building $(@F) $(K8S_VERSION)" sh -c 'cd $(TOOLS_MOD) && $(GO) build -o $@ -ldflags "$(K8S_LDFLAGS)" k8s.io/kubernetes/cmd/$(@F)'

# etcd's main package is its server module's root.
$(BIN)/etcd: $(TOOLS_MOD)/go.mod $(TOOLS_MOD)/go.sum
	@e2e/timed.sh "building etcd" sh -c 'cd $(TOOLS_MOD) && $(GO) build -o $@ go.etcd.io/etcd/server/v3'

$(BIN)/kwok $(BIN)/kwokctl: $(KWOK_MOD)/go.mod $(KWOK_MOD)/go.sum
	@e2e/timed.sh "building $(@F)" sh -c 'cd $(KWOK_MOD) && $(GO) build -o $@ sigs.k8s.io/kwok/cmd/$(@F)'

$(BIN)/helm: $(HELM_MOD)/go.mod $(HELM_MOD)/go.sum
	@e2e/timed.sh "building helm $(HELM_VERSION)" sh -c 'cd $(HELM_MOD) && $(GO) build -o $@ -ldflags "-X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" helm.sh/helm/v4/cmd/helm'

.PHONY: helm
helm: $(BIN)/helm ## Build bin/helm from Go modules (a minute or two the first time).

$(BIN)/cert-manager-controllers: $(CERT_MANAGER_MOD)/go.mod $(CERT_MANAGER_MOD)/go.sum $(CERT_MANAGER_MOD)/main.go
	@e2e/timed.sh "building cert-manager's controllers $(CERT_MANAGER_VERSION)" sh -c 'cd $(CERT_MANAGER_MOD) && $(GO) build -o $@ .'

.PHONY: test-cert-manager
test-cert-manager: control-plane $(BIN)/kubectl $(BIN)/helm $(BIN)/cert-manager-controllers ## Install the cert-manager variant (overlay and chart) where cert-manager's own controllers and cainjector run; part of make test (about 25 s).
	KUBEBUILDER_ASSETS=$(BIN) $(GO) test -count=1 -run 'RealCertManager' -v ./manifests/

.PHONY: chart-package
chart-package: $(BIN)/helm ## Package the Helm chart into bin/ (push it with: bin/helm push bin/daemonset-guard-<version>.tgz oci://<registry>/charts).
	$(BIN)/helm package $(CHART_DIR) --destination $(BIN)

.PHONY: cluster-tools
cluster-tools: $(CLUSTER_TOOLS) ## Build the local cluster's binaries (control plane, kubectl, kwok) into bin/.

.PHONY: localwebhook
localwebhook:
	$(GO) build -o $(BIN)/localwebhook ./e2e/localwebhook

.PHONY: cluster-up
cluster-up: cluster-tools build localwebhook ## Start the local cluster (kwok, 20 nodes) with the webhook on the host; KUBECONFIG=.cluster/kubeconfig.
	e2e/local-cluster.sh up

.PHONY: test-e2e
test-e2e: ## Run the e2e suite against KUBECONFIG, where daemonset-guard must be registered.
	$(GO) test -tags e2e -count=1 -timeout 20m -v ./e2e/

.PHONY: test-e2e-local
test-e2e-local: cluster-up ## Start the local cluster, run the e2e suite on it, stop it.
	@status=0; \
	KUBECONFIG=$(CLUSTER_STATE)/kubeconfig KUBECTL=$(BIN)/kubectl E2E_POLICY_FILE=$(CLUSTER_STATE)/policy.yaml \
	E2E_WEBHOOK_LOG=$(CLUSTER_STATE)/webhook.log E2E_WEBHOOK_READYZ=http://127.0.0.1:18081/readyz E2E_WEBHOOK_METRICS=http://127.0.0.1:18080/metrics \
	E2E_KWOKCTL=$(BIN)/kwokctl E2E_CLUSTER_NAME=daemonset-guard KWOK_WORKDIR=$(CLUSTER_STATE)/kwok $(GO) test -tags e2e -count=1 -timeout 20m -v ./e2e/ || status=$$?; \
	e2e/local-cluster.sh down; exit $$status

.PHONY: demo
demo: cluster-tools build localwebhook ## Start the local cluster with the demo policy and walk through daemonset-guard; leaves it running.
	POLICY_FILE=e2e/testdata/demo-policy.yaml e2e/local-cluster.sh up
	e2e/demo.sh

.PHONY: docker-build
docker-build: ## Build the image IMG (needs a container engine, which the CI machines lack).
	$(CONTAINER_TOOL) build -t $(IMG) .

# The cert-manager overlay needs cert-manager's API: without it kubectl would
# create everything but the certificates, and the webhook could never start.
.PHONY: deploy
deploy: $(BIN)/kubectl ## Apply manifests/overlays/OVERLAY (cert-manager, the default, or self-managed) to KUBECONFIG; the cert-manager overlay only where cert-manager runs.
	@if [ "$(OVERLAY)" = cert-manager ]; then \
		resources=$$($(BIN)/kubectl --kubeconfig $(KUBECONFIG) api-resources --api-group=cert-manager.io -o name) || exit 1; \
		case "$$resources" in *certificates.cert-manager.io*) ;; *) \
			echo "make deploy: this cluster has no cert-manager (no certificates.cert-manager.io API), which the cert-manager overlay needs." >&2; \
			echo "  Install cert-manager $(CERT_MANAGER_MIN_VERSION) or later first (https://cert-manager.io/docs/installation/), or deploy without it: make deploy OVERLAY=self-managed" >&2; \
			exit 1;; \
		esac; \
	fi
	$(BIN)/kubectl --kubeconfig $(KUBECONFIG) apply -k manifests/overlays/$(OVERLAY)

.PHONY: test-e2e-kind
test-e2e-kind: $(BIN)/kubectl ## Run the e2e suite on kind: cluster, image, cert-manager, manifests (needs Docker, kind, network).
	KIND=$(KIND) KIND_CLUSTER=$(KIND_CLUSTER) KUBECTL=$(BIN)/kubectl CERT_MANAGER_VERSION=$(CERT_MANAGER_VERSION) e2e/kind/run.sh

.PHONY: cluster-down
cluster-down: ## Stop every process of the local cluster and the webhook.
	e2e/local-cluster.sh down

.PHONY: clean
clean: ## Remove bin/.
	rm -rf $(BIN)
