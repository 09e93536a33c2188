# Postern: the two Quick start commands are `make run` and `make test`.
CARGO ?= cargo
FUZZ_SECONDS ?= 30

.PHONY: run test deps test-deps build release fuzz-deps fuzz-smoke fuzz bench check-config

FUZZ_TARGETS = sms_pdu wbxml udh gsm7_unpack api_request xform smpp_view at_parser hwdb smtp_mail form_data

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

release: deps
	$(CARGO) build --release

## Run Postern on its embedded default configuration (data in ./var, API on 127.0.0.1:8080).
run: release
	./target/release/postern serve

## The whole test suite (unit, integration with real RocksDB/HTTP, crash test, conformance
## vectors from ../shared/data, libwbxml differential). Benchmarks are built, not run.
test: test-deps
	$(CARGO) build --benches
	$(CARGO) test --no-fail-fast

check-config: release
	./target/release/postern check-config $(CONFIG)

fuzz-deps:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

## Every fuzz target for FUZZ_SECONDS (30 s by default); `make fuzz FUZZ_SECONDS=600` for the long run.
fuzz-smoke: fuzz-deps
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fuzz: fuzz-smoke

bench: release
	$(CARGO) run --release --example load -- --help >/dev/null
	@echo "see BENCHMARKS.md for the benchmark commands"
