#!/usr/bin/env bash
# Measures BROKER_MODE=pattern against BROKER_MODE=sharded on a Redis
# Cluster (bench/README.md, "bench/cluster.sh: pattern against sharded"): starts a
# three-master cluster and three roomcast instances on loopback ports below
# 55000, runs one bench/load per instance at the same time (each instance
# serves its own third of the rooms, and its posts go to its own rooms), and
# reports per instance the messages it received from Redis, and per shard
# the Redis CPU time per message. Everything it starts is stopped on exit.
#
#	bench/cluster.sh [output file]
#
# Environment: STREAMS, ROOMS, RATE (per instance), DURATION, ROUNDS.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/dev/null}
streams=${STREAMS:-300} rooms=${ROOMS:-30} rate=${RATE:-300} duration=${DURATION:-10s} rounds=${ROUNDS:-2}
work=$(mktemp -d)
redis_pids=() server_pids=()

stop_pids() {
  for pid in "$@"; do
    if kill "$pid" 2>/dev/null; then
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  done
}
cleanup() {
  stop_pids "${server_pids[@]}" "${redis_pids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT
exec > >(tee "$out") 2>&1

# free_port: a free loopback port below 55000 (the machine's rule for clusters;
# a cluster node also uses port+10000 for its bus).
free_port() {
  python3 -c '
import random, socket
while True:
    p = random.randint(20000, 44999)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# net_out PORT: bytes Redis sent to clients and replicas; bus PORT: Pub/Sub
# messages it sent over the cluster bus (PUBLISH is broadcast to every node).
net_out() { redis-cli -p "$1" info stats | tr -d '\r' | awk -F: '/^total_net_output_bytes/ {print $2}'; }
bus() { redis-cli -p "$1" cluster info | tr -d '\r' | awk -F: '/^cluster_stats_messages_publish(shard)?_sent/ {n += $2} END {print n + 0}'; }
received() { curl -sf "$1/metrics" | awk '/^roomcast_messages_received_total/ {print $2}'; }

go build -o "$work/roomcast" .
go build -o "$work/load" ./bench/load
tick=$(getconf CLK_TCK)

redis_ports=()
for i in 0 1 2; do
  port=$(free_port)
  mkdir -p "$work/redis$i"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --dir "$work/redis$i" >"$work/redis$i.log" 2>&1 &
  redis_pids+=($!) redis_ports+=("$port")
done
for port in "${redis_ports[@]}"; do
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${redis_ports[@]}") --cluster-yes >"$work/create.log"
for port in "${redis_ports[@]}"; do
  until redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok'; do sleep 0.1; done
done
redis_url="redis://127.0.0.1:${redis_ports[0]}?addr=127.0.0.1:${redis_ports[1]}&addr=127.0.0.1:${redis_ports[2]}"

echo "== $(date -u +%FT%TZ) roomcast $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+uncommitted') $(go version | cut -d' ' -f3) redis $(redis-server --version | cut -d' ' -f3) $(nproc) CPUs"
echo "== cluster: 3 masters on ports ${redis_ports[*]}; per instance: -streams $streams -rooms $rooms -rate $rate -duration $duration"

# measure MODE: three fresh instances in MODE, one load tool on each at once.
measure() {
  local mode=$1 urls=() i
  server_pids=()
  for i in 0 1 2; do
    local port
    port=$(free_port)
    ADDR=127.0.0.1:$port REDIS_URL=$redis_url REDIS_CLUSTER=true BROKER_MODE=$mode LOG_LEVEL=warn \
      POST_RATE=0 MAX_STREAMS_PER_CLIENT=0 MAX_STREAMS=0 "$work/roomcast" >"$work/server$i.log" 2>&1 &
    server_pids+=($!) urls+=("http://127.0.0.1:$port")
  done
  for i in 0 1 2; do
    until curl -sf "${urls[$i]}/readyz" >/dev/null; do sleep 0.1; done
  done
  local recv0=() cpu0=() net0=() bus0=() load_pids=()
  for i in 0 1 2; do recv0+=("$(received "${urls[$i]}")"); done
  for i in 0 1 2; do net0+=("$(net_out "${redis_ports[$i]}")") bus0+=("$(bus "${redis_ports[$i]}")"); done
  for i in 0 1 2; do cpu0+=("$(cpu_ticks "${redis_pids[$i]}")"); done
  local start=$SECONDS
  for i in 0 1 2; do
    "$work/load" -url "${urls[$i]}" -pid "${server_pids[$i]}" -streams "$streams" -rooms "$rooms" \
      -rate "$rate" -duration "$duration" >"$work/load$i.txt" 2>&1 &
    load_pids+=($!)
    sleep 0.3 # the load tool names its rooms after the millisecond it starts
  done
  local failed=0
  for pid in "${load_pids[@]}"; do wait "$pid" || failed=1; done
  local posts=0
  echo "== $mode: $(uptime | sed 's/.*load/load/')"
  for i in 0 1 2; do
    local acked recv
    acked=$(awk '/^posts/ {print $(NF-3)}' "$work/load$i.txt")
    recv=$(( $(received "${urls[$i]}") - recv0[i] ))
    posts=$((posts + acked))
    echo "instance $i: received from Redis $recv; $(grep -E '^posts' "$work/load$i.txt" | sed 's/  */ /g')"
    grep -E '^(deliveries|e2e latency|CPU server|result)' "$work/load$i.txt" | sed 's/^/    /; s/  */ /g'
  done
  echo "posts acknowledged, all instances: $posts"
  for i in 0 1 2; do
    local used
    used=$(( $(cpu_ticks "${redis_pids[$i]}") - cpu0[i] ))
    awk -v t="$used" -v hz="$tick" -v n="$posts" -v i="$i" \
      -v net="$(( $(net_out "${redis_ports[$i]}") - net0[i] ))" -v bus="$(( $(bus "${redis_ports[$i]}") - bus0[i] ))" \
      'BEGIN {printf "redis shard %d: CPU %.2fs = %.1f us per message posted anywhere; sent %.0f bytes to clients (%.0f per message), %d Pub/Sub messages over the cluster bus\n", i, t/hz, t/hz*1e6/n, net, net/n, bus}'
  done
  [ "$failed" = 0 ] || echo "== a load tool reported a failure (see its lines above)"
  stop_pids "${server_pids[@]}"
  server_pids=()
}

# Idle cost of each shard (cluster bus, cron), to tell apart from per-message cost.
idle0=()
for i in 0 1 2; do idle0+=("$(cpu_ticks "${redis_pids[$i]}")"); done
sleep 5
for i in 0 1 2; do
  awk -v t="$(( $(cpu_ticks "${redis_pids[$i]}") - idle0[i] ))" -v hz="$tick" -v i="$i" \
    'BEGIN {printf "redis shard %d idle: CPU %.2fs in 5s\n", i, t/hz}'
done

for _ in $(seq "$rounds"); do
  measure pattern
  measure sharded
done
