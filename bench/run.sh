#!/usr/bin/env bash
# Runs the load measurements of bench/README.md on this machine: builds
# roomcast and the load tool, starts a redis-server and roomcast on free
# loopback ports, runs every scenario back to back, and stops everything it
# started, also on failure or Ctrl-C.
#
#	bench/run.sh [output file]
#	bench/run.sh --compare BEFORE AFTER [output file]
#	bench/run.sh --presets idle,fanout,... [--binary BIN | --compare BEFORE AFTER] [output file]
#	bench/run.sh --floor US ...  (reuses a floor figure instead of measuring it)
#
# --compare measures two prebuilt roomcast binaries instead of the working
# tree: it runs three scenarios (bench/README.md, "Measuring a change") three
# times, alternating BEFORE and AFTER, against one redis-server.
# --presets runs the load tool's presets (idle, fanout, rooms, publish,
# storm, slow; "all" for every one) three times each, against
# BIN, the working tree, or alternating BEFORE and AFTER, each run on a
# fresh roomcast and redis-server, and ends with the medians.
# Every mode first measures the floor once with bench/floor, while no
# roomcast runs, and hands it to every load run (-floor), which reports the
# server's CPU per delivery also as a multiple of it.
set -euo pipefail
cd "$(dirname "$0")/.."
before= after= presets= binary= floor_us=
while [ $# -gt 0 ]; do
  case $1 in
  --floor) floor_us=${2:?--floor needs the floor in µs}; shift 2 ;;
  --compare)
    [ $# -ge 3 ] || { echo "usage: $0 --compare BEFORE AFTER [output file]" >&2; exit 2; }
    before=$(realpath "$2") after=$(realpath "$3")
    shift 3 ;;
  --presets) presets=${2:?--presets needs a list}; shift 2 ;;
  --binary) binary=$(realpath "${2:?--binary needs a file}"); shift 2 ;;
  *) break ;;
  esac
done
[ "$presets" = all ] && presets=idle,fanout,rooms,publish,storm,slow
out=${1:-/dev/null}
work=$(mktemp -d)
redis_pid= server_pid=
server_bin=$work/roomcast # the roomcast that start_server runs

cleanup() {
  for pid in $server_pid $redis_pid; do
    if kill "$pid" 2>/dev/null; then
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
exec > >(tee "$out") 2>&1

# label BIN names a binary in the output by its role and file name, so
# that results carry no machine paths.
label() {
  case $1 in
  "$work/roomcast") echo "roomcast@$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+uncommitted')" ;;
  "$before") echo "before:$(basename "$1")" ;;
  "$after") echo "after:$(basename "$1")" ;;
  *) basename "$1" ;;
  esac
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ -n "$binary" ]; then
  server_bin=$binary
elif [ -z "$before" ]; then
  go build -o "$work/roomcast" .
fi
go build -o "$work/load" ./bench/load
go build -o "$work/floor" ./bench/floor

# measure_floor: bench/floor once, while no roomcast runs.
measure_floor() {
  if [ -n "$floor_us" ]; then
    echo "== floor ${floor_us} µs per write (given with --floor)"
    return
  fi
  echo "== floor: bench/floor | $(uptime)"
  "$work/floor" -json >"$work/floor.txt"
  cat "$work/floor.txt"
  floor_us=$(python3 -c 'import json, sys
print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]["us_per_write"])' "$work/floor.txt")
}
redis_port=$(free_port)
port=$(free_port)
url=http://127.0.0.1:$port
start_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid"
    while kill -0 "$redis_pid" 2>/dev/null; do sleep 0.1; done
  fi
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning --dir "$work" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "redis-server did not start" >&2
  exit 1
}
start_redis

# start_server redis|embedded: a fresh roomcast for each scenario. The load
# comes from one client address, so the per-client limits are turned off.
start_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid"
    while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done
  fi
  local redis_url=
  [ "$1" = redis ] && redis_url=redis://127.0.0.1:$redis_port
  ADDR=127.0.0.1:$port REDIS_URL=$redis_url LOG_LEVEL=warn \
    POST_RATE=0 MAX_STREAMS_PER_CLIENT=0 MAX_STREAMS=0 "$server_bin" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -sf "$url/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "roomcast did not become ready:" >&2
  cat "$work/server.log" >&2
  exit 1
}

# load MODE ARGS...: one run of the load tool against a fresh server.
load() {
  local mode=$1
  shift
  echo "== $mode$([ -n "$before" ] && echo " $(label "$server_bin")"): $* | $(uptime)"
  start_server "$mode"
  local pids=(-pid "$server_pid")
  [ "$mode" = redis ] && pids+=(-redis-pid "$redis_pid")
  "$work/load" -url "$url" "${pids[@]}" -floor "$floor_us" "$@" || echo "== load tool exit status $?"
}

if [ -n "$presets" ]; then
  echo "== $(date -u +%FT%TZ) $(go version) $(redis-server --version | cut -d' ' -f3) $(nproc) CPUs, ulimit -n $(ulimit -n)"
  measure_floor
  bins=("$server_bin")
  [ -n "$before" ] && bins=("$before" "$after")
  for preset in ${presets//,/ }; do
    for _ in 1 2 3; do
      for server_bin in "${bins[@]}"; do
        echo "== run $(label "$server_bin") preset=$preset | $(uptime)" | tee -a "$work/runs.txt"
        start_redis # a fresh Redis: its client and command counts are the run's own
        start_server redis
        status=0
        "$work/load" -url "$url" -pid "$server_pid" -redis-pid "$redis_pid" -redis-addr "127.0.0.1:$redis_port" \
          -floor "$floor_us" -preset "$preset" >"$work/run.txt" 2>&1 || status=$?
        tee -a "$work/runs.txt" <"$work/run.txt"
        [ "$status" = 0 ] || echo "== load tool exit status $status"
      done
    done
  done
  echo "== medians"
  python3 bench/medians.py "$work/runs.txt"
  exit 0
fi

if [ -n "$before" ]; then
  echo "== $(date -u +%FT%TZ) before $(label "$before"), after $(label "$after"), $(go version) $(redis-server --version | cut -d' ' -f3) $(nproc) CPUs"
  measure_floor
  # compare ARGS...: three rounds of BEFORE then AFTER with the same load.
  compare() {
    for _ in 1 2 3; do
      for server_bin in "$before" "$after"; do
        load redis "$@"
      done
    done
  }
  echo "== (a) 1000 streams, 10 rooms, 500 messages/s for 10s"
  compare -streams 1000 -rooms 10 -rate 500 -duration 10s -drain 30s
  echo "== (b) 2000 streams, 2 rooms, 100 messages/s for 10s"
  compare -streams 2000 -rooms 2 -rate 100 -duration 10s -drain 30s
  echo "== (c) overload: 2000 streams, 2 rooms, 400 messages/s offered for 10s"
  compare -streams 2000 -rooms 2 -rate 400 -duration 10s -drain 30s
  exit 0
fi

echo "== $(date -u +%FT%TZ) roomcast $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+uncommitted') $(go version) $(redis-server --version | cut -d' ' -f3) $(nproc) CPUs, ulimit -n $(ulimit -n)"
measure_floor
echo "== (a) memory of idle streams"
load redis -streams 5000 -rooms 10 -rate 0 -duration 2s -settle 3s
echo "== (b, c) 1000 streams, 10 rooms, 500 messages/s for 10s; Redis and embedded, twice"
for mode in redis embedded redis embedded; do
  load "$mode" -streams 1000 -rooms 10 -rate 500 -duration 10s
done
echo "== (d) the same at 50 messages/s"
for mode in redis embedded; do
  load "$mode" -streams 1000 -rooms 10 -rate 50 -duration 10s
done
echo "== (e) overload: 2000 streams, 2 rooms, 400 messages/s offered for 10s"
load redis -streams 2000 -rooms 2 -rate 400 -duration 10s -drain 30s
