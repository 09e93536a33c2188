# Postern: the two Quick start commands are `make run` and `make test`.
CARGO ?= cargo
FUZZ_SECONDS ?= 30

.PHONY: run test deps test-deps build release fuzz-smoke bench check-config

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

release: deps
	$(CARGO) build --release

## Run Postern on its embedded default configuration (data in ./var, API on 127.0.0.1:8080).
run: release
	./target/release/postern serve

## The whole test suite (unit, integration with real RocksDB/HTTP, crash test).
test: test-deps
	$(CARGO) test --all-targets --no-fail-fast

check-config: release
	./target/release/postern check-config $(CONFIG)

bench: release
	$(CARGO) run --release --example load -- --help >/dev/null
	@echo "see BENCHMARKS.md for the benchmark commands"
