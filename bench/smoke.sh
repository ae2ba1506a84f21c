#!/usr/bin/env bash
# The idle and storm presets of bench/load at small scale (seconds), so that
# the load tool and the guarantees it checks cannot rot: builds roomcast and
# the tool, starts a redis-server and roomcast on free loopback ports, and
# fails if a run reports a stream that did not open or ended early, a lost
# or duplicated message, or a stream that never caught up. It also runs
# bench/floor briefly and hands its figure to the storm run (-floor), so that
# the floor and the report beside it cannot rot either. .ci/test runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl python3 redis-server; do
  command -v "$tool" >/dev/null || { echo "bench/smoke.sh needs $tool" >&2; exit 1; }
done
work=$(mktemp -d)
redis_pid= server_pid=
cleanup() {
  for pid in $server_pid $redis_pid; do
    if kill "$pid" 2>/dev/null; then
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

go build -o "$work/roomcast" .
go build -o "$work/load" ./bench/load
go build -o "$work/floor" ./bench/floor
echo "== smoke: floor, 100 connections, one short run"
"$work/floor" -conns 100 -runs 1 -duration 200ms -json >"$work/floor.txt"
cat "$work/floor.txt"
floor_us=$(python3 -c 'import json, sys
print([json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]["us_per_write"])' "$work/floor.txt")
redis_port=$(free_port)
port=$(free_port)
url=http://127.0.0.1:$port
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
ADDR=127.0.0.1:$port REDIS_URL=redis://127.0.0.1:$redis_port LOG_LEVEL=warn \
  POST_RATE=0 MAX_STREAMS_PER_CLIENT=0 MAX_STREAMS=0 "$work/roomcast" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -sf "$url/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "$url/readyz" >/dev/null || { echo "roomcast did not become ready:" >&2; cat "$work/server.log" >&2; exit 1; }

common=(-url "$url" -pid "$server_pid" -redis-pid "$redis_pid" -redis-addr "127.0.0.1:$redis_port")
echo "== smoke: idle, 200 streams over 10 rooms"
"$work/load" "${common[@]}" -preset idle -streams 200 -rooms 10 -duration 1s -settle 1s
echo "== smoke: storm, 200 streams over 10 rooms resuming 50 behind, posting at 100/s"
"$work/load" "${common[@]}" -floor "$floor_us" -preset storm -streams 200 -rooms 10 -rate 100 -duration 3s -drain 10s
