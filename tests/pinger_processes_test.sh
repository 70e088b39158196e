#!/usr/bin/env bash
# Goal: the Env demonstration service runs unchanged as real processes on loopback: three
# `pinger` processes commit on a majority over real TCP and real fdatasync'd files; a
# process killed with SIGKILL restarts from its disk without losing anything it had
# reported committed; the survivors keep committing meanwhile; SIGTERM exits cleanly.
set -euo pipefail

binary="$1"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p + 1000 < 65536:
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p + 1000)); t.close(); print(p); break
        except OSError:
            t.close()'
}

ports=("$(free_port)" "$(free_port)" "$(free_port)")
peers_of() {
  local self="$1" list="" node
  for node in 0 1 2; do
    [[ "$node" == "$self" ]] && continue
    list+="${list:+,}${node}:127.0.0.1:$((ports[node] + 1000))"
  done
  echo "$list"
}
start_node() {
  local node="$1"
  "$binary" --node-id="$node" --port="${ports[node]}" --data-dir="$work/n$node" \
    --peers="$(peers_of "$node")" 2>>"$work/n$node.log" &
  pids[node]=$!
}
committed_of() {  # Prints the committed number node $1 reports, or -1 if unreachable.
  local reply
  reply="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/${ports[$1]}; printf 'STATUS\n' >&3; head -n1 <&3" 2>/dev/null || true)"
  if [[ "$reply" =~ committed=([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; else echo -1; fi
}
wait_committed_at_least() {  # node, minimum
  for _ in $(seq 1 200); do
    (( $(committed_of "$1") >= $2 )) && return 0
    sleep 0.1
  done
  echo "FAIL: node $1 did not reach committed >= $2 (now $(committed_of "$1"))"
  cat "$work"/n*.log
  exit 1
}

for node in 0 1 2; do start_node "$node"; done
for node in 0 1 2; do wait_committed_at_least "$node" 20; done
echo "all three nodes committed >= 20 over real TCP and disks"

before_kill="$(committed_of 1)"
kill -9 "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
survivor_before="$(committed_of 0)"
wait_committed_at_least 0 $((survivor_before + 20))
echo "majority (nodes 0 and 2) kept committing while node 1 was dead"

start_node 1
wait_committed_at_least 1 0
after_restart="$(committed_of 1)"
if (( after_restart < before_kill )); then
  echo "FAIL: node 1 reported committed=$before_kill before SIGKILL but $after_restart after restart"
  exit 1
fi
wait_committed_at_least 1 $((after_restart + 20))
echo "node 1 restarted from disk at committed=$after_restart (>= $before_kill) and kept going"

for node in 0 1 2; do kill -TERM "${pids[node]}"; done
for node in 0 1 2; do
  if ! wait "${pids[node]}"; then
    echo "FAIL: node $node did not exit 0 on SIGTERM"
    exit 1
  fi
done
pids=()
grep -q "signal received: stopping" "$work/n0.log"
echo "PASS"
