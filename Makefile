# make check: install what the tests need (when root), start PostgreSQL on
# loopback, then vet and run every test.
GO ?= go

.PHONY: check test vet build bench

check: export STARTTLS_PRELOAD_REQUIRE_ALL=1
check:
	@eval "$$(bash scripts/test-env.sh)" && \
	  export STARTTLS_PRELOAD_TEST_EXIM STARTTLS_PRELOAD_TEST_POSTGRES STARTTLS_PRELOAD_TEST_CHROMIUM && \
	  $(GO) vet ./... && \
	  $(GO) test -count=1 -timeout 30m ./...

test:
	$(GO) test ./...

vet:
	$(GO) vet ./...

build:
	$(GO) build -o bin/starttls-preload ./cmd/starttls-preload

bench:
	bash scripts/bench.sh
