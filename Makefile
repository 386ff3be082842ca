# pgtwin-migrate — build, test, install.
#   make binary    the single executable dist/pgtwin-migrate
#   make test      every test: unit, and integration on the real rig
#   make demo      a whole migration with cutover on local PostgreSQL 17/18 + Pacemaker
#   make install   DESTDIR=... installs the agent (and man page)

DESTDIR ?=
OCF_DIR ?= /usr/lib/ocf/resource.d/heartbeat
SRC := $(shell find src -name '*.ts') package.json

.PHONY: all deps npm-deps sys-deps build binary metadata check unit test test-integration \
        install uninstall clean bench demo rig-up rig-down

all: binary

# npm dependencies, exactly as locked (their approved install scripts run).
npm-deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Debian packages of the rig (needs root; skipped when all are present).
sys-deps:
	scripts/rig.sh deps

deps: npm-deps sys-deps

build: dist/pgtwin-migrate.cjs
dist/pgtwin-migrate.cjs: $(SRC) node_modules/.package-lock.json scripts/build.mjs
	node scripts/build.mjs

binary: dist/pgtwin-migrate
dist/pgtwin-migrate: dist/pgtwin-migrate.cjs scripts/make-binary.mjs
	node scripts/make-binary.mjs

metadata: build
	node dist/pgtwin-migrate.cjs meta-data > agent-metadata/pgtwin-migrate.xml

check: npm-deps
	npx tsc -p .

unit: npm-deps
	npx vitest run --project unit

# All tests. The integration project brings the rig up and down itself.
test: deps check binary
	scripts/run-tests.sh

install: binary
	install -D -m 0755 dist/pgtwin-migrate $(DESTDIR)$(OCF_DIR)/pgtwin-migrate

uninstall:
	rm -f $(DESTDIR)$(OCF_DIR)/pgtwin-migrate

rig-up: deps binary
	scripts/rig.sh up

rig-down:
	scripts/rig.sh down

clean:
	rm -rf dist
