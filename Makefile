# pgtwin-migrate — build, test, install.
#   make binary    the single executable dist/pgtwin-migrate
#   make test      every test: unit, integration on the real rig, then the cluster rig
#   make test-cluster   the cluster project only (multi-node rig, scripts/cluster-rig.sh)
#   make demo      a whole migration with cutover on local PostgreSQL 17/18 + Pacemaker
#   make install   DESTDIR=... installs the agent (and man page)
#   make deb, make rpm   packages in dist/ (packaging/)

DESTDIR ?=
OCF_DIR ?= /usr/lib/ocf/resource.d/heartbeat
SRC := $(shell find src -name '*.ts' -o -name '*.sql') package.json

.PHONY: all deps npm-deps sys-deps build binary metadata docs man check unit test \
        install uninstall clean bench bench-metadata bench-monitor bench-copy bench-cutover bench-cluster demo demo-down rig-up rig-down \
        test-cluster rig-cluster-up rig-cluster-down

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

# README parameter table and the man page, from the parameter table.
docs: build
	node dist/gen-docs.cjs

man: dist/pgtwin-migrate.7
dist/pgtwin-migrate.7: dist/pgtwin-migrate.cjs
	node dist/gen-docs.cjs man

check: npm-deps
	npx tsc -p .

unit: npm-deps
	npx vitest run --project unit

# All tests. The integration project brings the rig up and down itself, then
# the cluster project brings up and down the cluster rig.
test: deps check binary
	scripts/run-tests.sh

test-cluster: deps check binary
	scripts/run-tests.sh --cluster

MAN_DIR ?= /usr/share/man/man7

install: binary man
	install -D -m 0755 dist/pgtwin-migrate $(DESTDIR)$(OCF_DIR)/pgtwin-migrate
	install -D -m 0644 dist/pgtwin-migrate.7 $(DESTDIR)$(MAN_DIR)/pgtwin-migrate.7

uninstall:
	rm -f $(DESTDIR)$(OCF_DIR)/pgtwin-migrate $(DESTDIR)$(MAN_DIR)/pgtwin-migrate.7

# Packages of the prebuilt executable, man page and README, in dist/:
# pgtwin-migrate_<version>_<arch>.deb (dpkg-deb) and, for SUSE/RHEL,
# pgtwin-migrate-<version>-1.<arch>.rpm (rpmbuild; on Debian: apt-get install rpm).
.PHONY: deb rpm
deb: binary man
	scripts/make-deb.sh

rpm: binary man
	scripts/make-rpm.sh

# A whole migration with cutover on local PostgreSQL 17/18 and Pacemaker.
demo: deps binary
	scripts/demo.sh

demo-down:
	scripts/demo.sh down

# Benchmarks (each prints its numbers); they bring the rig up and down.
bench: bench-metadata bench-monitor bench-copy bench-cutover
bench-metadata: binary
	node bench/metadata.mjs
bench-monitor bench-copy bench-cutover: deps binary
	scripts/rig.sh up && { node bench/$(@:bench-%=%).mjs; s=$$?; scripts/rig.sh down; exit $$s; }
# The cutover and monitor benchmarks on the cluster rig (brought up and down
# by the run): BENCH=cutover|monitor|all, SIZES, MONITOR_SIZES, WRITES, RUNS.
bench-cluster: deps binary
	PGTWIN_TEST_REPORT=dist/bench-cluster.json npx vitest run --project bench-cluster

rig-up: deps binary
	scripts/rig.sh up

rig-down:
	scripts/rig.sh down

# The multi-node cluster rig, by hand: scripts/rig.sh cluster status|exec|client|node …
rig-cluster-up: deps binary
	scripts/rig.sh cluster up

rig-cluster-down:
	scripts/rig.sh cluster down

clean:
	rm -rf dist
