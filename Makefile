# Berth's entry points. `make demo` and `make test` are the stable interface (README, CI): keep
# their names and behaviour.
SHELL := /bin/bash
GO ?= go
BIN := bin/berth
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# A static binary, as Kubernetes builds its node and control-plane binaries: only the resolver
# (package net) and os/user would use cgo, both have pure-Go versions, and without libc and the
# dynamic loader mapped Berth's RSS is 1.6-2.2 MiB smaller (docs/design.md). Override
# with CGO_ENABLED=1 for a build that must use the C resolver.
CGO_ENABLED ?= 0
DEMO_ROOT ?= /var/lib/berth-demo
DEMO_NODE ?= demo-node

.PHONY: all build demo demo-clean test unit integration lint clean

all: build

build:
	CGO_ENABLED=$(CGO_ENABLED) $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/berth

# The demo: a real containerd (test/env/runtime.sh), Berth in standalone mode on examples/static/.
# Ctrl-C stops Berth and leaves the pods running, as a kubelet does; `make demo-clean` removes them.
demo: build
	@endpoint=$$(test/env/runtime.sh up | tail -n1 | sed 's/^CONTAINER_RUNTIME_ENDPOINT=//'); \
	echo; \
	echo "Berth runs the pods in examples/static/ on containerd at $$endpoint."; \
	echo "  Pods:        $(BIN) pods --root-dir $(DEMO_ROOT)      (or -o json)"; \
	echo "  Web server:  curl http://127.0.0.1:8080/  (hostPort), or the pod IP shown by berth pods"; \
	echo "  Logs:        /var/log/pods/default_*/<container>/0.log"; \
	echo "  Edit, add or delete files in examples/static/ and watch Berth follow."; \
	echo "  Ctrl-C stops Berth (the pods keep running); 'make demo-clean' removes them and the runtime."; \
	echo; \
	exec $(BIN) --container-runtime-endpoint "$$endpoint" --pod-manifest-path $(CURDIR)/examples/static \
		--root-dir $(DEMO_ROOT) --hostname-override $(DEMO_NODE)

demo-clean:
	test/env/runtime.sh down
	rm -rf $(DEMO_ROOT)

# Every test: formatting and vet, unit tests, then the integration suite against a real containerd
# that this target starts and stops. .ci/run runs exactly this.
test: lint unit integration

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./test/...
	cd test/bench && $(GO) vet ./...

unit:
	$(GO) test -count=1 ./...
	cd test/bench && $(GO) test -count=1 ./...

# The integration suite needs a containerd (test/env/runtime.sh) and, for cluster mode, etcd and
# kube-apiserver (test/env/controlplane.sh, built once and cached); both are stopped afterwards.
CONTROLPLANE_DIR ?= /tmp/berth-controlplane
integration: build
	@set -euo pipefail; \
	trap 'test/env/controlplane.sh down $(CONTROLPLANE_DIR); test/env/runtime.sh down' EXIT; \
	endpoint=$$(test/env/runtime.sh up | tail -n1 | sed 's/^CONTAINER_RUNTIME_ENDPOINT=//'); \
	test/env/controlplane.sh up $(CONTROLPLANE_DIR) >/dev/null; \
	BERTH_BIN=$(CURDIR)/$(BIN) CONTAINER_RUNTIME_ENDPOINT=$$endpoint \
	BERTH_CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) BERTH_CONTROLPLANE_SCRIPT=$(CURDIR)/test/env/controlplane.sh \
		$(GO) test -tags integration -count=1 -timeout 40m -v ./test/integration/

clean:
	rm -rf bin

# Berth as a systemd service (docs/systemd.md): the binary in $(BINDIR), the unit in $(UNITDIR), a
# default config in $(SYSCONFDIR)/berth/config.yaml (an existing one is kept) and the static pod
# directory $(SYSCONFDIR)/berth/manifests. DESTDIR stages the files under another root (packages,
# tests); systemctl daemon-reload runs only without DESTDIR and with systemd running as PID 1.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= /etc/systemd/system
SYSTEMD_RUNNING = [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]
.PHONY: install uninstall
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/berth
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/berth
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/berth/manifests
	sed -e 's|/usr/local/bin/berth|$(BINDIR)/berth|' -e 's|/etc/berth/|$(SYSCONFDIR)/berth/|g' \
		deploy/systemd/berth.service > $(DESTDIR)$(UNITDIR)/berth.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/berth.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/berth/config.yaml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/berth/config.yaml"; \
	else \
		sed 's|/etc/berth/|$(SYSCONFDIR)/berth/|g' deploy/systemd/config.yaml > $(DESTDIR)$(SYSCONFDIR)/berth/config.yaml && \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/berth/config.yaml && \
		echo "installed the default $(DESTDIR)$(SYSCONFDIR)/berth/config.yaml"; \
	fi
	@if $(SYSTEMD_RUNNING); then \
		systemctl daemon-reload && echo "start Berth with: systemctl enable --now berth"; \
	else \
		echo "no systemctl daemon-reload (DESTDIR is set, or systemd is not PID 1)"; \
	fi

# Removes the binary and the unit (stopping the service first: the pods keep running); keeps the
# config, the manifests, the root dir and the pods.
uninstall:
	@if $(SYSTEMD_RUNNING); then systemctl disable --now berth.service || true; fi
	rm -f $(DESTDIR)$(BINDIR)/berth $(DESTDIR)$(UNITDIR)/berth.service
	@if $(SYSTEMD_RUNNING); then systemctl daemon-reload; fi
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/berth (config, manifests), /var/lib/berth and the running pods"

# The benchmarks (test/bench, a module of its own; docs/benchmarks.md): Berth — and with
# AGENTS=berth,kubelet the upstream kubelet — against the test control plane, on containerd and on
# a fake CRI. SCENARIOS=a,b picks scenarios (default all), RESULTS=dir the output folder (default
# bench-results/<timestamp>); BENCH_ARGS passes more flags (-cpuprofile, -fake-latency 1ms, ...).
SCENARIOS ?=
AGENTS ?= berth
RESULTS ?= bench-results/$(shell date +%Y%m%d-%H%M%S)
BENCH_ARGS ?=
.PHONY: bench
bench: build
	cd test/bench && $(GO) build -o $(CURDIR)/bin/berth-bench .
	bin/berth-bench -repo $(CURDIR) -berth $(CURDIR)/$(BIN) -scenarios '$(SCENARIOS)' -agents '$(AGENTS)' \
		-results '$(RESULTS)' $(BENCH_ARGS)
