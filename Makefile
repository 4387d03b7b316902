# Teken — build, test and run the signing-terminal software.
# `make demo` and `make test` are the two entry points on a fresh Debian 12
# machine; both install what they need first (`make deps`).

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin

GO       ?= go
MODULE   := github.com/tekenid/teken
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X $(MODULE)/internal/version.Version=$(VERSION)
BIN      := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

# Debian packages the build, the tests and the demo use.
DEB_PACKAGES := ca-certificates gcc git libpcsclite-dev pkg-config pcscd \
	vsmartcard-vpcd mosquitto mosquitto-clients yubico-piv-tool opensc \
	chromium openssl util-linux procps python3-jsonschema prometheus \
	poppler-utils qpdf libnss3-tools zbar-tools lintian man-db nodejs iproute2 \
	nats-server rabbitmq-server python3-paho-mqtt python3-cryptography yubikey-manager gnutls-bin postgresql \
	php-cli php-curl

# Test-only npm tools live in the user's cache, outside the repository;
# the tests look for them there and reach no registry themselves.
REDOCLY_VERSION := 2.77.0
REDOCLY_DIR      = $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/teken-npm/redocly-$(REDOCLY_VERSION)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test demo bench bench-intake soak lint deb deb-gateway clean vendor-pdfjs

all: build

# deps installs only what is missing, so it is a quick no-op once done.
# npm comes as Debian's package only where Node.js came without it (a
# NodeSource nodejs carries its own npm and conflicts with the package).
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v $(GO) >/dev/null || { echo "deps: Go 1.26 or newer is required (https://go.dev/doc/install)"; exit 1; }
	@$(GO) mod download
	@command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends npm
	@[ -x $(REDOCLY_DIR)/node_modules/.bin/redocly ] || { \
		echo "deps: installing @redocly/cli $(REDOCLY_VERSION) (test-only: lints gateway/openapi.yaml) into $(REDOCLY_DIR)"; \
		mkdir -p $(REDOCLY_DIR) && npm install --no-audit --no-fund --prefix $(REDOCLY_DIR) @redocly/cli@$(REDOCLY_VERSION) >/dev/null; }

build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/tekend ./cmd/tekenctl

test: deps
	$(GO) test -race -count=1 -timeout 25m ./...

# The demo starts its own broker and pcscd (in a private mount namespace,
# hence root), a software token, tekend and three sample letters.
demo: deps build
	$(SUDO) $(BIN)/tekenctl demo --tekend $(BIN)/tekend

# soak runs a live flow for SOAK (default 10m) while tekend, Mosquitto and
# pcscd are killed at random, the broker is frozen and the disk fills, then
# checks that every job has exactly one outcome (README, How the tests run).
SOAK ?= 10m
soak: deps
	TEKEN_SOAK=$(SOAK) $(GO) test -count=1 -v -timeout 0 -run TestSoak ./internal/soak

# bench runs every benchmark whose figures docs/BENCHMARKS.md keeps, each
# with its raw baseline measured in the same run, one package at a time so
# each is sized on its own; about ten minutes on the reference machine.
# BENCHTIME scales the quick micro-benchmarks only; the scenarios run once.
BENCHTIME ?= 2s
BENCH_GO   = $(GO) test -count=1 -timeout 30m -run '^$$'
bench: deps
	$(BENCH_GO) -bench 'BenchmarkVerifyJob10MiB|BenchmarkDecodeResultLarge' -benchtime $(BENCHTIME) ./api/
	$(BENCH_GO) -bench 'BenchmarkInsert|BenchmarkIntakeStore|BenchmarkOutboxDrain|BenchmarkBaseline' -benchtime $(BENCHTIME) ./queue/
	$(BENCH_GO) -bench BenchmarkOpenBacklog -benchtime 3x ./queue/
	$(BENCH_GO) -bench BenchmarkResultDrain -benchtime 1x ./transport/
	$(BENCH_GO) -bench 'BenchmarkSignP256|BenchmarkEncode' -benchtime $(BENCHTIME) ./signature/cms/
	$(BENCH_GO) -bench 'BenchmarkSign$$|BenchmarkLevels' -benchtime $(BENCHTIME) ./signature/pades/
	$(BENCH_GO) -bench PresenceLatency -benchtime 40x ./device/
	$(BENCH_GO) -bench IdleCPU -benchtime 1x ./device/
	$(BENCH_GO) -bench SignThroughPCSCD -benchtime 5x ./device/
	$(BENCH_GO) -bench BenchmarkTapToResult -benchtime 30x ./daemon/
	$(MAKE) --no-print-directory bench-intake
	$(BENCH_GO) -bench BenchmarkTekendBacklogMemory -benchtime 1x ./internal/soak/
	$(BENCH_GO) -bench BenchmarkFleet -benchtime 1x ./internal/soak/
	$(BENCH_GO) -bench BenchmarkOfflineWeek -benchtime 1x ./internal/soak/
	$(BENCH_GO) -bench BenchmarkGateway -benchtime 1x ./gateway/

# bench-intake: 10,000 signed jobs replayed by mosquitto_pub -l into a real
# tekend process, timed to the last stored receipt, beside the raw QoS 1
# rate of the same lines through the same broker.
INTAKE_JOBS ?= 10000
bench-intake: deps
	TEKEN_INTAKE_JOBS=$(INTAKE_JOBS) $(BENCH_GO) -bench BenchmarkIntakeEndToEnd -benchtime 1x ./internal/soak/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# The .deb (docs/INSTALL.md). nfpm is pinned at 2.45.2: from 2.46 it needs
# modules (go.digitalxero.dev) that the Go module proxy does not serve here.
# lintian checks the result: add lintian to DEB_PACKAGES to run that test.
NFPM           := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEB_DIST       ?= dist
DEB_STAGE       = $(DEB_DIST)/stage
DEB_UPSTREAM   ?= $(shell packaging/debian/version.sh)
DEB_VERSION     = $(DEB_UPSTREAM)-1
DEB_ARCH       ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB_MAINTAINER ?= Teken maintainers <teken@tekenid.invalid>
DEB_FILE        = $(DEB_DIST)/teken_$(DEB_VERSION)_$(DEB_ARCH).deb
# Debian's hardening flags for the cgo part (libpcsclite calls); PIE too.
DEB_CFLAGS     ?= -g -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fcf-protection
DEB_CGO_LDFLAGS ?= -Wl,-z,relro -Wl,-z,now
# Timestamps come from the last commit, so the same commit gives the same package.
DEB_EPOCH      ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

deb:
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)
	CGO_ENABLED=1 CGO_CFLAGS='$(DEB_CFLAGS)' CGO_LDFLAGS='$(DEB_CGO_LDFLAGS)' \
		$(GO) build -buildmode=pie -trimpath -ldflags '$(LDFLAGS) -extldflags "$(DEB_CGO_LDFLAGS)"' \
		-o $(DEB_STAGE)/ ./cmd/tekend ./cmd/tekenctl
	set -o pipefail; day=$$(date -u -d @$(DEB_EPOCH) +%Y-%m-%d); \
	for m in tekend.8 tekenctl.1; do \
		packaging/man/genman.sh packaging/man/$$m.in $(DEB_STAGE) '$(DEB_UPSTREAM)' $$day | gzip -9n > $(DEB_STAGE)/$$m.gz; \
	done
	set -o pipefail; sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@DESCRIBE@|$(VERSION)|' \
		-e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' -e "s|@DATE@|$$(LC_ALL=C date -u -R -d @$(DEB_EPOCH))|" \
		packaging/debian/changelog.in | gzip -9n > $(DEB_STAGE)/changelog.Debian.gz
	sed -e 's|$${TEKEN_STAGE}|$(abspath $(DEB_STAGE))|' packaging/nfpm.yaml > $(DEB_STAGE)/nfpm.yaml
	TEKEN_DEB_VERSION='$(DEB_UPSTREAM)' TEKEN_DEB_ARCH=$(DEB_ARCH) \
	TEKEN_DEB_MAINTAINER='$(DEB_MAINTAINER)' SOURCE_DATE_EPOCH=$(DEB_EPOCH) \
		$(GO) run $(NFPM) package --config $(DEB_STAGE)/nfpm.yaml --packager deb --target $(DEB_FILE)
	@echo "deb: $(DEB_FILE)"

clean:
	rm -rf $(BIN) dist

# The kiosk renders PDFs with pdf.js, served from the binary (no network at
# run time). This refreshes the vendored copy from the npm registry.
PDFJS_VERSION := 4.10.38
vendor-pdfjs:
	rm -rf /tmp/teken-pdfjs && mkdir -p /tmp/teken-pdfjs
	cd /tmp/teken-pdfjs && npm pack pdfjs-dist@$(PDFJS_VERSION) >/dev/null && tar xzf pdfjs-dist-$(PDFJS_VERSION).tgz
	d=daemon/kiosk/web/vendor/pdfjs; rm -rf $$d && mkdir -p $$d/standard_fonts && \
	cp /tmp/teken-pdfjs/package/build/pdf.min.mjs /tmp/teken-pdfjs/package/build/pdf.worker.min.mjs /tmp/teken-pdfjs/package/LICENSE $$d/ && \
	cp /tmp/teken-pdfjs/package/standard_fonts/* $$d/standard_fonts/ && \
	echo "pdfjs-dist $(PDFJS_VERSION) (npm), files build/pdf.min.mjs, build/pdf.worker.min.mjs, standard_fonts/; refreshed by make vendor-pdfjs" > $$d/VERSION && \
	(cd $$d && sha256sum pdf.min.mjs pdf.worker.min.mjs > SHA256SUMS)

# The gateway's .deb, teken-gateway (docs/GATEWAY.md): the same version,
# maintainer and reproducible time stamps as the terminal's package, its own
# stage so both can be built into one DEB_DIST. tekengw has no cgo: Go links
# it into a PIE that needs nothing but the dynamic loader (libc6).
DEB_GATEWAY_STAGE = $(DEB_DIST)/stage-gateway
DEB_GATEWAY_FILE  = $(DEB_DIST)/teken-gateway_$(DEB_VERSION)_$(DEB_ARCH).deb

deb-gateway:
	rm -rf $(DEB_GATEWAY_STAGE) && mkdir -p $(DEB_GATEWAY_STAGE)
	CGO_ENABLED=0 $(GO) build -buildmode=pie -trimpath -ldflags '$(LDFLAGS)' -o $(DEB_GATEWAY_STAGE)/ ./cmd/tekengw
	set -o pipefail; sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@DESCRIBE@|$(VERSION)|' \
		-e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' -e "s|@DATE@|$$(LC_ALL=C date -u -R -d @$(DEB_EPOCH))|" \
		packaging/gateway/changelog.in | gzip -9n > $(DEB_GATEWAY_STAGE)/changelog.Debian.gz
	sed -e 's|$${TEKEN_STAGE}|$(abspath $(DEB_GATEWAY_STAGE))|' packaging/gateway/nfpm.yaml > $(DEB_GATEWAY_STAGE)/nfpm.yaml
	TEKEN_DEB_VERSION='$(DEB_UPSTREAM)' TEKEN_DEB_ARCH=$(DEB_ARCH) \
	TEKEN_DEB_MAINTAINER='$(DEB_MAINTAINER)' SOURCE_DATE_EPOCH=$(DEB_EPOCH) \
		$(GO) run $(NFPM) package --config $(DEB_GATEWAY_STAGE)/nfpm.yaml --packager deb --target $(DEB_GATEWAY_FILE)
	@echo "deb-gateway: $(DEB_GATEWAY_FILE)"
