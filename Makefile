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
	poppler-utils qpdf libnss3-tools zbar-tools

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test demo bench lint deb clean vendor-pdfjs

all: build

# deps installs only what is missing, so it is a quick no-op once done.
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

build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/tekend ./cmd/tekenctl

test: deps
	$(GO) test -count=1 -timeout 25m ./...

# The demo starts its own broker and pcscd (in a private mount namespace,
# hence root), a software token, tekend and three sample letters.
demo: deps build
	$(SUDO) $(BIN)/tekenctl demo --tekend $(BIN)/tekend

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

deb: build
	@echo "deb: packaging is not built yet"; exit 1

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
