#!/usr/bin/env bash
# HTTP/2 beside HTTP/1.1 (bench/README.md, "HTTP/2"): builds roomcast and
# the load tool, makes a self-signed certificate, and runs the idle and
# fanout presets at small scale over four protocols, alternating, three
# rounds, each run on a fresh roomcast and redis-server on free loopback
# ports; ends with the medians. Stops everything it started, also on
# failure or Ctrl-C.
#
#	bench/h2.sh [output file]
#
# http1: plain HTTP/1.1; https1: HTTP/1.1 over TLS; h2: HTTP/2 with the
# streams packed on as few connections as the server allows (250 each);
# h2-1: HTTP/2 with a connection per stream.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl openssl python3 redis-server; do
  command -v "$tool" >/dev/null || { echo "bench/h2.sh needs $tool" >&2; exit 1; }
done
out=${1:-/dev/null}
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
exec > >(tee "$out") 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
stop() {
  if [ -n "$1" ] && kill "$1" 2>/dev/null; then
    while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
  fi
}

go build -o "$work/roomcast" .
go build -o "$work/load" ./bench/load
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
redis_port=$(free_port)
port=$(free_port)

# start VARIANT: a fresh redis-server and roomcast, with TLS unless http1.
start() {
  stop "$server_pid"
  stop "$redis_pid"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning --dir "$work" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  local tls=() scheme=https
  if [ "$1" = http1 ]; then scheme=http; else tls=(TLS_CERT_FILE="$work/cert.pem" TLS_KEY_FILE="$work/key.pem"); fi
  url=$scheme://127.0.0.1:$port
  env ADDR=127.0.0.1:$port REDIS_URL=redis://127.0.0.1:$redis_port LOG_LEVEL=warn "${tls[@]}" \
    POST_RATE=0 MAX_STREAMS_PER_CLIENT=0 MAX_STREAMS=0 "$work/roomcast" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    curl -sfk "$url/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "roomcast did not become ready:" >&2
  cat "$work/server.log" >&2
  exit 1
}

declare -A flags=([http1]="" [https1]="-insecure" [h2]="-h2 -insecure" [h2-1]="-h2 -insecure -streams-per-conn 1")
declare -A scale=([idle]="-streams 2000 -rooms 100" [fanout]="-streams 500 -rooms 1")
echo "== $(date -u +%FT%TZ) roomcast $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+uncommitted') $(go version) $(redis-server --version | cut -d' ' -f3) $(nproc) CPUs"
for preset in idle fanout; do
  for _ in 1 2 3; do
    for variant in http1 https1 h2 h2-1; do
      echo "== run $variant preset=$preset | $(uptime)" | tee -a "$work/runs.txt"
      start "$variant"
      status=0
      writes=$(awk '/^syscw/ {print $2}' "/proc/$server_pid/io")
      # shellcheck disable=SC2086 # the flags are words
      "$work/load" -url "$url" -pid "$server_pid" -redis-pid "$redis_pid" -redis-addr "127.0.0.1:$redis_port" \
        -preset "$preset" ${scale[$preset]} ${flags[$variant]} >"$work/run.txt" 2>&1 || status=$?
      echo "server writes   $(($(awk '/^syscw/ {print $2}' "/proc/$server_pid/io") - writes)) write system calls during the run" >>"$work/run.txt"
      tee -a "$work/runs.txt" <"$work/run.txt"
      [ "$status" = 0 ] || echo "== load tool exit status $status"
    done
  done
done
echo "== medians"
python3 bench/medians.py "$work/runs.txt"
