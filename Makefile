# emarsys-etl: `make demo` runs the main job against the simulator, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CLICKHOUSE_ADDR ?= 127.0.0.1:9000
CH_HOST := $(word 1,$(subst :, ,$(CLICKHOUSE_ADDR)))
CH_PORT := $(word 2,$(subst :, ,$(CLICKHOUSE_ADDR)))
# A private ClickHouse (started only when none answers at CLICKHOUSE_ADDR) keeps its data here.
# The default address keeps ClickHouse's default ports; another address gets
# its own folder and the two ports after its native one, so it never clashes
# with a server already on 8123/9009.
ifeq ($(CH_PORT),9000)
CH_DIR ?= $(CURDIR)/.local/clickhouse
CH_HTTP_PORT ?= 8123
CH_INTERSERVER_PORT ?= 9009
else
CH_DIR ?= $(CURDIR)/.local/clickhouse-$(CH_PORT)
CH_HTTP_PORT ?= $(shell echo $$(( $(CH_PORT) + 1 )))
CH_INTERSERVER_PORT ?= $(shell echo $$(( $(CH_PORT) + 2 )))
endif
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 10s
export CLICKHOUSE_ADDR

.PHONY: help build demo demo-stop test lint fuzz bench clickhouse-up clickhouse-down cluster-up cluster-down cluster-smoke clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

build: ## build bin/emarsys-etl, bin/emarsys-sim and bin/emarsys-demo
	@mkdir -p bin
	go build -ldflags "$(LDFLAGS)" -o bin/emarsys-etl ./cmd/emarsys-etl
	go build -o bin/emarsys-sim ./cmd/emarsys-sim
	go build -o bin/emarsys-demo ./cmd/emarsys-demo

demo: build clickhouse-up ## backfill 7 simulated days through FTP into ClickHouse and print what was loaded
	./bin/emarsys-demo --etl ./bin/emarsys-etl --clickhouse $(CLICKHOUSE_ADDR) --workdir $(CURDIR)/.local/demo

demo-stop: clickhouse-down ## stop the private ClickHouse the demo started (its data stays in .local/)

test: lint clickhouse-up ## run every test (needs ClickHouse: started privately if none answers)
	CLICKHOUSE_REQUIRED=1 go test -count=1 -timeout 20m ./...
	go test -count=1 -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./pipeline/csvrows
	go test -count=1 -run '^$$' -fuzz FuzzFastReader -fuzztime $(FUZZTIME) ./pipeline/csvrows

BENCH_ROWS ?= 2000000
BENCH_RUNS ?= 3

bench: build clickhouse-up ## load BENCH_ROWS rows: emarsys-etl vs clickhouse-client vs FTP read, then parser/typing benchmarks
	go build -o bin/emarsys-bench ./cmd/emarsys-bench
	./bin/emarsys-bench --etl ./bin/emarsys-etl --clickhouse $(CLICKHOUSE_ADDR) --rows $(BENCH_ROWS) --runs $(BENCH_RUNS) --workdir $(CURDIR)/.local/bench --server-pid-file $(CH_DIR)/clickhouse.pid
	go test -run '^$$' -bench 'Parse|Typing|Gocsv' -benchtime 10x -cpu 1 ./pipeline/csvrows

fuzz: ## fuzz the CSV parser and the splitter against encoding/csv for longer (FUZZTIME=5m each)
	go test -run '^$$' -fuzz FuzzParse -fuzztime $(if $(filter 10s,$(FUZZTIME)),5m,$(FUZZTIME)) ./pipeline/csvrows
	go test -run '^$$' -fuzz FuzzFastReader -fuzztime $(if $(filter 10s,$(FUZZTIME)),5m,$(FUZZTIME)) ./pipeline/csvrows

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...

clickhouse-up: ## make sure ClickHouse answers at CLICKHOUSE_ADDR: install and start a private one on loopback if not
	@if clickhouse-client --host $(CH_HOST) --port $(CH_PORT) --query 'SELECT 1' >/dev/null 2>&1; then \
	  echo "ClickHouse answers at $(CLICKHOUSE_ADDR)"; exit 0; fi; \
	if ! command -v clickhouse-server >/dev/null 2>&1; then \
	  echo "installing Debian's clickhouse-server (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null; fi; \
	mkdir -p $(CH_DIR)/tmp; \
	echo "starting a private ClickHouse on $(CLICKHOUSE_ADDR), data in $(CH_DIR)"; \
	cd $(CH_DIR) && clickhouse-server --daemon --config-file=/etc/clickhouse-server/config.xml --pidfile=$(CH_DIR)/clickhouse.pid -- \
	  --path=$(CH_DIR)/ --tmp_path=$(CH_DIR)/tmp/ --logger.log=$(CH_DIR)/log --logger.errorlog=$(CH_DIR)/err \
	  --listen_host=$(CH_HOST) --tcp_port=$(CH_PORT) --http_port=$(CH_HTTP_PORT) --interserver_http_port=$(CH_INTERSERVER_PORT) \
	  >/dev/null 2>&1 </dev/null; \
	for i in $$(seq 1 60); do \
	  if clickhouse-client --host $(CH_HOST) --port $(CH_PORT) --query 'SELECT 1' >/dev/null 2>&1; then \
	    echo "ClickHouse is up (stop it with: make clickhouse-down CLICKHOUSE_ADDR=$(CLICKHOUSE_ADDR))"; exit 0; fi; \
	  if [ $$i -gt 3 ] && [ -f $(CH_DIR)/clickhouse.pid ] && ! kill -0 $$(cat $(CH_DIR)/clickhouse.pid) 2>/dev/null; then \
	    echo "ClickHouse exited at start:"; tail -n 5 $(CH_DIR)/err; exit 1; fi; sleep 1; done; \
	echo "ClickHouse did not answer within 60 s; see $(CH_DIR)/err"; exit 1

clickhouse-down: ## stop the private ClickHouse started by clickhouse-up
	@if [ -f $(CH_DIR)/clickhouse.pid ]; then kill $$(cat $(CH_DIR)/clickhouse.pid) && echo "stopped ClickHouse (data kept in $(CH_DIR))"; rm -f $(CH_DIR)/clickhouse.pid; \
	else echo "no private ClickHouse running"; fi

CLUSTER_DIR ?= $(CURDIR)/.local/cluster

cluster-up: ## start a local 2x2 ClickHouse cluster + ZooKeeper (ports 2181, 9101-9104)
	configs/cluster/cluster.sh up $(CLUSTER_DIR)

cluster-down: ## stop the local cluster (data kept in .local/cluster)
	configs/cluster/cluster.sh down $(CLUSTER_DIR)

cluster-smoke: cluster-up ## check ON CLUSTER DDL, sharding and replication on the local cluster
	configs/cluster/cluster.sh smoke $(CLUSTER_DIR)

CLUSTER_TCP_BASE ?= 9100
export CLUSTER_TCP_BASE
CLUSTER_ADDRS := $(shell for n in 1 2 3 4; do printf '127.0.0.1:%d,' $$(($(CLUSTER_TCP_BASE)+n)); done | sed 's/,$$//')

.PHONY: test-cluster
test-cluster: cluster-up ## cluster mode on the local 2x2 cluster: 3 accounts, a replica killed mid-load, migrations twice (leaves it up)
	EMARSYS_CLUSTER_ADDRS=$(CLUSTER_ADDRS) EMARSYS_CLUSTER_DIR=$(CLUSTER_DIR) \
	  go test -count=1 -timeout 10m -v -run '^TestCluster' ./pipeline/ | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+cluster_test)'; exit $${PIPESTATUS[0]}

BENCH_BI_DAYS ?= 30
BENCH_BI_PER_DAY ?= 300000

.PHONY: bench-bi e2e-browser
e2e-browser: clickhouse-up ## the built-in dashboard page in headless Chromium (apt-get installs chromium if missing)
	@command -v chromium >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	E2E_BROWSER=1 CLICKHOUSE_REQUIRED=1 go test -count=1 -v -run '^TestBrowser$$' ./pipeline/dashboard

bench-bi: clickhouse-up ## load 30 days x 300k simulated responses through the product, time every dashboard query
	set -o pipefail; BENCH_BI=1 BENCH_BI_DAYS=$(BENCH_BI_DAYS) BENCH_BI_PER_DAY=$(BENCH_BI_PER_DAY) CLICKHOUSE_REQUIRED=1 \
	  go test -count=1 -v -timeout 2h -run '^TestBenchBI$$' ./configs/grafana | grep -E '^(bench-bi|---|FAIL|ok|\s+bench_test)'

CHAOS_DIR ?= $(CURDIR)/.local/chaos

.PHONY: chaos
chaos: build ## SIGKILL the ETL 30+ times mid-backfill, drop FTP, kill a private ClickHouse (port 9400); compare (SEED=n replays)
	@command -v clickhouse-server >/dev/null 2>&1 || { echo "installing Debian's clickhouse-server (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null; }
	go build -o bin/emarsys-chaos ./cmd/emarsys-chaos
	./bin/emarsys-chaos --etl ./bin/emarsys-etl --workdir $(CHAOS_DIR) $(if $(SEED),--seed $(SEED))

clean: ## remove build output (not the private ClickHouse data)
	rm -rf bin
