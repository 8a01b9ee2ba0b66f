#!/usr/bin/env bash
# Local ClickHouse test cluster for cluster mode: one ZooKeeper and four
# clickhouse-server instances (cluster `emarsys_cluster`, 2 shards x 2 replicas),
# all on 127.0.0.1, all state in one private folder. No systemd, no root-owned
# paths except the Debian packages it may install.
#
#   configs/cluster/cluster.sh up     [DIR]   start (installs zookeeper/clickhouse-server with apt-get if missing)
#   configs/cluster/cluster.sh down   [DIR]   stop everything started from DIR (data kept)
#   configs/cluster/cluster.sh status [DIR]   show what runs; exit 0 only if all five answer
#   configs/cluster/cluster.sh smoke  [DIR]   run the ON CLUSTER/replication checks on a running cluster
#
# DIR defaults to $PWD/.local/cluster. Ports can be moved with environment variables
# (read by `up`, remembered in DIR/cluster.env for status):
#   CLUSTER_ZK_PORT=2181          ZooKeeper client port
#   CLUSTER_TCP_BASE=9100         ClickHouse native ports  9101..9104
#   CLUSTER_HTTP_BASE=8200        ClickHouse HTTP ports    8201..8204
#   CLUSTER_INTERSERVER_BASE=9200 replication (interserver) 9201..9204
#   CLUSTER_START_TIMEOUT=60      seconds to wait for each component
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CMD=${1:-}
DIR=${2:-$PWD/.local/cluster}
DIR=$(realpath -m -- "$DIR")

ZK_PORT=${CLUSTER_ZK_PORT:-2181}
TCP_BASE=${CLUSTER_TCP_BASE:-9100}
HTTP_BASE=${CLUSTER_HTTP_BASE:-8200}
INTERSERVER_BASE=${CLUSTER_INTERSERVER_BASE:-9200}
TIMEOUT=${CLUSTER_START_TIMEOUT:-60}
NODES=(1 2 3 4)   # chN: shard = (N+1)/2, replica name = chN
declare -A LAUNCHED=()

log() { printf '%s cluster: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# status/down of a DIR use the ports it was started with
load_env() {
  if [[ -f $DIR/cluster.env ]]; then
    # shellcheck disable=SC1091
    source "$DIR/cluster.env"
  fi
}

shard_of() { echo $((($1 + 1) / 2)); }
tcp_port() { echo $((TCP_BASE + $1)); }

# pid_alive PIDFILE: true if the pid in PIDFILE runs a process whose command line mentions DIR
# (guards against a stale pid file whose pid was reused by something else)
pid_alive() {
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

zk_ok() {
  local reply
  reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; printf ruok >&3; cat <&3" 2>/dev/null) || true
  [[ $reply == imok ]]
}

ch_query() { # ch_query N SQL
  clickhouse-client --host 127.0.0.1 --port "$(tcp_port "$1")" --connect_timeout 2 --query "$2" "${@:3}"
}
ch_ok() { ch_query "$1" 'SELECT 1' >/dev/null 2>&1; }
ch_zk_ok() { ch_query "$1" "SELECT count() FROM system.zookeeper WHERE path = '/'" >/dev/null 2>&1; }

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local pkgs=()
  [[ -f /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null 2>&1 || pkgs+=(zookeeper)
  command -v clickhouse-server >/dev/null 2>&1 || pkgs+=(clickhouse-server)
  command -v clickhouse-client >/dev/null 2>&1 || pkgs+=(clickhouse-client)
  if ((${#pkgs[@]})); then
    log "installing Debian packages: ${pkgs[*]} (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  command -v java >/dev/null 2>&1 || die "java not found (the zookeeper package should have pulled default-jre)"
}

render() { # render TEMPLATE OUT KEY=VALUE...
  local tmpl=$1 out=$2 args=() kv
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$tmpl" >"$out.tmp"
  if grep -q '@[A-Z_0-9]*@' "$out.tmp"; then die "unreplaced placeholder in $out"; fi
  mv "$out.tmp" "$out"
}

write_configs() {
  mkdir -p "$DIR/zk/data"
  cat >"$DIR/cluster.env" <<EOF
ZK_PORT=$ZK_PORT
TCP_BASE=$TCP_BASE
HTTP_BASE=$HTTP_BASE
INTERSERVER_BASE=$INTERSERVER_BASE
EOF
  render "$SCRIPT_DIR/zoo.cfg.tmpl" "$DIR/zk/zoo.cfg" "ZK_DIR=$DIR/zk" "ZK_PORT=$ZK_PORT"
  local n d
  for n in "${NODES[@]}"; do
    d=$DIR/ch$n
    mkdir -p "$d/data" "$d/tmp" "$d/log" "$d/user_files" "$d/format_schemas"
    render "$SCRIPT_DIR/config.xml.tmpl" "$d/config.xml" \
      "CH_DIR=$d" "NAME=ch$n" "SHARD=$(shard_of "$n")" \
      "TCP_PORT=$(tcp_port "$n")" "HTTP_PORT=$((HTTP_BASE + n))" "INTERSERVER_PORT=$((INTERSERVER_BASE + n))" \
      "TCP_PORT_1=$(tcp_port 1)" "TCP_PORT_2=$(tcp_port 2)" "TCP_PORT_3=$(tcp_port 3)" "TCP_PORT_4=$(tcp_port 4)" \
      "ZK_PORT=$ZK_PORT"
    cp "$SCRIPT_DIR/users.xml" "$d/users.xml"
  done
}

start_zk() {
  local pidf=$DIR/zk/zookeeper.pid
  if pid_alive "$pidf"; then log "ZooKeeper already running (pid $(cat "$pidf"))"; return; fi
  rm -f "$pidf"
  port_busy "$ZK_PORT" && die "port $ZK_PORT is taken by another process (set CLUSTER_ZK_PORT)"
  # zookeeper.jar's manifest Class-Path lists its Debian dependencies; add exactly one
  # SLF4J binding (slf4j-simple: INFO to stderr -> zookeeper.log). "/usr/share/java/*"
  # would put six SLF4J bindings on the class path.
  local cp=/usr/share/java/zookeeper.jar
  [[ -f /usr/share/java/slf4j-simple.jar ]] && cp+=:/usr/share/java/slf4j-simple.jar
  log "starting ZooKeeper on 127.0.0.1:$ZK_PORT"
  (
    cd "$DIR/zk"
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" \
      java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
      -Dzookeeper.admin.enableServer=false -Dzookeeper.jmx.log4j.disable=true \
      -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zk/zoo.cfg" \
      >>"$DIR/zk/zookeeper.log" 2>&1 </dev/null &
  )
}

start_ch() {
  local n=$1 d=$DIR/ch$1 port
  port=$(tcp_port "$n")
  if pid_alive "$d/clickhouse.pid"; then log "ch$n already running (pid $(cat "$d/clickhouse.pid"))"; return; fi
  rm -f "$d/clickhouse.pid"
  local p
  for p in "$port" $((HTTP_BASE + n)) $((INTERSERVER_BASE + n)); do
    port_busy "$p" && die "port $p (for ch$n) is taken by another process"
  done
  log "starting ch$n (shard $(shard_of "$n")) on 127.0.0.1:$port"
  # not in a subshell: $! is the server itself (setsid execs in place), so up can tell a crash
  setsid clickhouse-server --config-file="$d/config.xml" --pidfile="$d/clickhouse.pid" \
    >>"$d/log/stdout.log" 2>&1 </dev/null &
  LAUNCHED[$n]=$!
}

# ch_ready N: answers SELECT 1; fails the whole `up` at once if the server it just launched died
ch_ready() {
  local n=$1
  ch_ok "$n" && return 0
  if [[ -n ${LAUNCHED[$n]:-} ]] && ! kill -0 "${LAUNCHED[$n]}" 2>/dev/null; then
    tail -n 5 "$DIR/ch$n/log/stdout.log" "$DIR/ch$n/log/clickhouse-server.err.log" 2>/dev/null >&2 || true
    die "ch$n exited during startup; see $DIR/ch$n/log/"
  fi
  return 1
}

wait_for() { # wait_for WHAT CHECK...
  local what=$1 t0=$SECONDS
  shift
  until "$@"; do
    ((SECONDS - t0 < TIMEOUT)) || return 1
    sleep 0.3
  done
  log "$what answers ($((SECONDS - t0)) s)"
}

cmd_up() {
  local t0=$SECONDS n
  ensure_packages
  write_configs
  start_zk
  wait_for "ZooKeeper on $ZK_PORT" zk_ok || die "ZooKeeper did not answer within $TIMEOUT s; see $DIR/zk/zookeeper.log"
  for n in "${NODES[@]}"; do start_ch "$n"; done
  for n in "${NODES[@]}"; do
    wait_for "ch$n on $(tcp_port "$n")" ch_ready "$n" ||
      die "ch$n did not answer SELECT 1 within $TIMEOUT s; see $DIR/ch$n/log/clickhouse-server.err.log"
  done
  # every server must reach ZooKeeper (replicated tables, ON CLUSTER DDL)
  for n in "${NODES[@]}"; do
    wait_for "ch$n -> ZooKeeper" ch_zk_ok "$n" ||
      die "ch$n cannot reach ZooKeeper; see $DIR/ch$n/log/clickhouse-server.err.log"
  done
  log "cluster emarsys_cluster is up in $((SECONDS - t0)) s (DIR=$DIR)"
  log "connect: clickhouse-client --host 127.0.0.1 --port $(tcp_port 1)   stop: $0 down $DIR"
}

stop_pidfile() { # stop_pidfile NAME PIDFILE
  local name=$1 f=$2 pid i
  if ! pid_alive "$f"; then
    [[ -e $f ]] && rm -f "$f"
    log "$name not running"
    return
  fi
  pid=$(tr -dc '0-9' <"$f")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
  log "stopped $name (pid $pid)"
}

cmd_down() {
  load_env
  local n
  for n in "${NODES[@]}"; do stop_pidfile "ch$n" "$DIR/ch$n/clickhouse.pid" & done
  wait
  stop_pidfile ZooKeeper "$DIR/zk/zookeeper.pid"
  log "data kept in $DIR (remove it for a clean start)"
}

cmd_status() {
  load_env
  local ok=0 n state
  if pid_alive "$DIR/zk/zookeeper.pid" && zk_ok; then state=up; else state=DOWN; ok=1; fi
  printf '%-10s %-5s 127.0.0.1:%s\n' zookeeper "$state" "$ZK_PORT"
  for n in "${NODES[@]}"; do
    if pid_alive "$DIR/ch$n/clickhouse.pid" && ch_ok "$n"; then state=up; else state=DOWN; ok=1; fi
    printf '%-10s %-5s tcp 127.0.0.1:%s http :%s interserver :%s shard %s replica ch%s\n' \
      "ch$n" "$state" "$(tcp_port "$n")" $((HTTP_BASE + n)) $((INTERSERVER_BASE + n)) "$(shard_of "$n")" "$n"
  done
  return $ok
}

# smoke: the checks the cluster was verified with (ClickHouse 18.16.1), on a scratch database
cmd_smoke() {
  load_env
  local db=cluster_smoke n got want
  q() { ch_query "$@"; }
  expect() { # expect WHAT GOT WANT
    if [[ $2 != "$3" ]]; then die "smoke: $1: got '$2', want '$3'"; fi
    log "smoke ok: $1"
  }
  q 1 "DROP DATABASE IF EXISTS $db ON CLUSTER emarsys_cluster" >/dev/null
  q 1 "CREATE DATABASE IF NOT EXISTS $db ON CLUSTER emarsys_cluster" >/dev/null
  q 1 "CREATE TABLE IF NOT EXISTS $db.t ON CLUSTER emarsys_cluster (d Date, user_id UInt64, v String)
       ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/$db/t', '{replica}') PARTITION BY toYYYYMM(d) ORDER BY user_id" >/dev/null
  q 1 "CREATE TABLE IF NOT EXISTS $db.t_dist ON CLUSTER emarsys_cluster AS $db.t
       ENGINE = Distributed(emarsys_cluster, $db, t, cityHash64(user_id))" >/dev/null
  q 1 "CREATE TABLE IF NOT EXISTS $db.r ON CLUSTER emarsys_cluster (d Date, user_id UInt64, v String, ver UInt32)
       ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/$db/r', '{replica}', ver) PARTITION BY toYYYYMM(d) ORDER BY user_id" >/dev/null
  q 1 "CREATE TABLE IF NOT EXISTS $db.r_dist ON CLUSTER emarsys_cluster AS $db.r
       ENGINE = Distributed(emarsys_cluster, $db, r, cityHash64(user_id))" >/dev/null
  q 3 "INSERT INTO $db.t_dist SELECT toDate('2024-01-01') + number % 30, number, toString(number) FROM system.numbers LIMIT 1000" \
    --insert_distributed_sync=1
  for n in "${NODES[@]}"; do q "$n" "SYSTEM SYNC REPLICA $db.t"; done
  # sharding: shard k (1-based) holds exactly the rows with cityHash64(user_id) % 2 = k-1, on both replicas
  for n in "${NODES[@]}"; do
    got=$(q "$n" "SELECT countIf(cityHash64(user_id) % 2 != $(($(shard_of "$n") - 1))), count() > 0 FROM $db.t FORMAT TSV")
    expect "ch$n holds only shard $(shard_of "$n") rows" "$got" $'0\t1'
  done
  expect "replicas of shard 1 equal" "$(q 1 "SELECT groupBitXor(cityHash64(user_id, v)) FROM $db.t")" "$(q 2 "SELECT groupBitXor(cityHash64(user_id, v)) FROM $db.t")"
  expect "replicas of shard 2 equal" "$(q 3 "SELECT groupBitXor(cityHash64(user_id, v)) FROM $db.t")" "$(q 4 "SELECT groupBitXor(cityHash64(user_id, v)) FROM $db.t")"
  expect "Distributed total" "$(q 2 "SELECT count() FROM $db.t_dist")" 1000
  q 1 "INSERT INTO $db.r_dist SELECT toDate('2024-01-01'), number % 100, 'v1', 1 FROM system.numbers LIMIT 100" --insert_distributed_sync=1
  q 2 "INSERT INTO $db.r_dist SELECT toDate('2024-01-01'), number % 100, 'v2', 2 FROM system.numbers LIMIT 100" --insert_distributed_sync=1
  expect "ReplacingMergeTree FINAL" "$(q 4 "SELECT count(), countIf(v = 'v2') FROM $db.r_dist FINAL FORMAT TSV")" $'100\t100'
  q 1 "ALTER TABLE $db.t ON CLUSTER emarsys_cluster ADD COLUMN extra String DEFAULT 'x'" >/dev/null
  # ALTER ... ON CLUSTER is refused for the (non-replicated) Distributed table in 18.16: alter it per server
  for n in "${NODES[@]}"; do q "$n" "ALTER TABLE $db.t_dist ADD COLUMN extra String DEFAULT 'x'"; done
  expect "ALTER ADD COLUMN seen through Distributed" "$(q 4 "SELECT countIf(extra = 'x') FROM $db.t_dist")" 1000
  q 1 "DROP DATABASE IF EXISTS $db ON CLUSTER emarsys_cluster" >/dev/null
  log "smoke passed"
}

case $CMD in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  smoke) cmd_smoke ;;
  *) usage ;;
esac
