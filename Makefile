# The two commands a newcomer runs: `make restore-drill` and `make test`.
CARGO    ?= cargo
PLAYBOOK ?= playbooks/sqlite.toml
ARGS     ?=
TARGET   := $(or $(CARGO_TARGET_DIR),target)
BIN      := $(TARGET)/release/restore-drill
# The default drill starts this demo service on the restored copy.
export RESTORE_DRILL_DEMO_SERVICE ?= $(TARGET)/release/restore-drill-demo-service

.PHONY: restore-drill build test lint schemas bench

## Run the default drill (or PLAYBOOK=...) with the release build.
restore-drill: build
	$(BIN) run $(PLAYBOOK) $(ARGS)

## The tool and the demo service the default drill starts on the restored database.
build:
	$(CARGO) build --release --locked --bins

## The whole test suite (unit + integration against real engines).
test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## Regenerate the committed JSON Schemas from the Rust types.
schemas:
	$(CARGO) run --quiet --locked -- schema playbook > schemas/playbook.schema.json
	$(CARGO) run --quiet --locked -- schema artifact > schemas/restore_drill.schema.json

## Speed against the standard tools (SIZE_MB=1024 for 1 GiB).
bench:
	$(CARGO) bench --locked --bench speed
