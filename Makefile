# The two commands a newcomer runs: `make restore-drill` and `make test`.
CARGO    ?= cargo
PLAYBOOK ?= playbooks/sqlite.toml
ARGS     ?=
TARGET   := $(or $(CARGO_TARGET_DIR),target)
BIN      := $(TARGET)/release/restore-drill
# The default drill starts this demo service on the restored copy.
export RESTORE_DRILL_DEMO_SERVICE ?= $(TARGET)/release/restore-drill-demo-service

.PHONY: restore-drill build install test lint schemas bench mutants

## Run the default drill (or PLAYBOOK=...) with the release build.
restore-drill: build
	$(BIN) run $(PLAYBOOK) $(ARGS)

## The tool and the demo service the default drill starts on the restored database.
build:
	$(CARGO) build --release --locked --bins

## Install restore-drill (and the demo service) into ~/.cargo/bin (CARGO_INSTALL_ROOT).
install:
	$(CARGO) install --locked --path .

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

## Mutation testing of the code that decides pass or fail, against the fast tests
## (.cargo/mutants.toml); slow, not part of `make test`. MUTANTS_FILES=... narrows it.
MUTANTS_FILES ?= src/runner/gates.rs src/runner/verdict.rs src/steps/checksum.rs src/steps/sql.rs \
	src/steps/restore.rs src/steps/http.rs src/steps/files.rs \
	src/engines/sqlite/conn.rs src/engines/sqlite/integrity.rs \
	src/engines/sqlite/mod.rs src/engines/files/verify.rs src/sources/audit.rs \
	src/steps/sql_content.rs src/steps/sql_records.rs src/engines/digest.rs \
	src/engines/roles.rs src/engines/sqlite/content.rs src/engines/postgres/copy.rs \
	src/engines/scratch.rs src/proc/owner.rs \
	src/playbook/validate/numbers.rs src/limits.rs
# scratch.rs and owner.rs decide whether an existing scratch database is a killed drill's
# to drop. numbers.rs and, of src/limits.rs, `sample_problem` refuse `jobs`, `retries`
# and `sample` out of range.
# Of src/engines/sqlite/mod.rs, only the checks: those `integrity`, `foreign_keys`, `tables_exist`,
# `indexes_exist`, `table_counts` call, and those of a restore (header, quick_check, tables).
# Of src/engines/postgres/copy.rs, the reading of COPY lines into digests and psql's
# arguments (the rest needs a server, which the fast tests do not start).
SQLITE_CHECKS := user_tables|user_indexes|foreign_keys|names|quote|count_rows|quick_check|check_backup_file|restore
MUTANTS_JOBS ?= 1
mutants:
	$(CARGO) mutants --jobs $(MUTANTS_JOBS) $(addprefix -f ,$(MUTANTS_FILES)) \
		-F '^src/(runner|steps)/' -F '^src/(engines/(files/verify|sqlite/(conn|integrity|content)|digest|roles|scratch)|sources/audit|proc/owner)\.rs' \
		-F '^src/engines/sqlite/mod\.rs:.* ($(SQLITE_CHECKS))\b' \
		-F '^src/engines/postgres/copy\.rs:.* (in|replace) (Rows<.*>::add_lines?|field|Psql::(args|in_snapshot))\b' \
		-F '^src/playbook/validate/numbers\.rs' -F '^src/limits\.rs:.* sample_problem\b' \
		$(MUTANTS_ARGS)
