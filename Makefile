# reelfs: make run starts the all-in-one cluster; make test runs every test.
GO      ?= go
BIN     := bin/reelfs
DATA    ?= ./data
MNT     ?= ./mnt

.PHONY: build run test unit e2e extmod bench fuzz deps lint clean consul lab-check lab lab-down chaos

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/reelfs

# Start metaserver + 2 chunkservers + httpd + FUSE mount in the foreground.
run: build
	@./scripts/deps.sh --run-only
	@mkdir -p $(MNT)
	@fusermount3 -u -z $(MNT) 2>/dev/null || true
	$(BIN) server --dir $(DATA) --mount $(MNT)

deps:
	./scripts/deps.sh

# Consul v1.14.11 for the tests that start a real agent: built from the Go
# module proxy once (10+ minutes) into a cache outside the clone, linked at
# bin/consul; later runs only relink.
consul:
	./scripts/consul.sh

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt needed" && exit 1)
	$(GO) vet ./...

# Unit tests (race detector) then end-to-end tests against the real binary.
test: deps lint unit extmod e2e

unit: consul
	$(GO) test -race -timeout 15m $$($(GO) list ./... | grep -v /tests)

# The SDK as a program outside this module sees it: tests/extmod is a
# module of its own (so ./... above skips it) that replaces reelfs with this
# checkout. -mod=mod lets a new dependency of the SDK in, without a tidy.
extmod:
	cd tests/extmod && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -race -count=1 ./...

# TestLabChaos runs on its own with -v, so its seed, faults and summary
# table are printed when it passes too (issue 14: a 2-minute chaos run on
# every CI run; CHAOS_TEST_DURATION=30s for a quick one).
CHAOS_TEST_DURATION ?= 2m
e2e: build
	REELFS_BIN=$(CURDIR)/$(BIN) $(GO) test -timeout 25m -count=1 -skip '^TestLabChaos$$' ./tests/...
	REELFS_BIN=$(CURDIR)/$(BIN) REELFS_CHAOS_TEST_DURATION=$(CHAOS_TEST_DURATION) \
		$(GO) test -timeout 20m -count=1 -v -run '^TestLabChaos$$' ./tests/

bench: deps build
	$(GO) run ./bench --bin $(CURDIR)/$(BIN)

# The multi-machine lab (vagrant/): shellcheck of its provisioning and
# `vagrant validate` of its Vagrantfile. Installs shellcheck and vagrant
# (~1 GB) on demand as root; skips what it cannot check otherwise.
lab-check: build
	./scripts/lab-check.sh

# The same lab as network namespaces on this machine (root): one namespace
# per host of vagrant/hosts on bridge rlab-br (10.77.0.0/24, no route out),
# provisioned by vagrant/provision.sh --direct; state and logs in data/lab.
# make lab-down removes every namespace, link, mount and process it made.
LAB := $(GO) run ./lab/reelfs-lab
lab: build consul
	$(LAB) up

lab-down:
	$(LAB) down

# Fault injection on a lab of its own (make lab's names, so not beside it):
# kill -9, SIGSTOP, cut links, full disks, flipped block bytes for
# CHAOS_DURATION, then every acknowledged operation is checked. Logs of a
# failing run stay in data/lab.
CHAOS_DURATION ?= 90s
chaos: build consul
	CHAOS_DURATION=$(CHAOS_DURATION) $(LAB) chaos

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./internal/chunk

clean:
	rm -rf bin
