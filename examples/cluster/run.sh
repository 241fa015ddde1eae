#!/usr/bin/env bash
# A livesnap cluster on one machine: three nats-server processes forming a JetStream cluster
# (client ports 4222-4224, routes 6222-6224) and two livesnap nodes, a (RTMP 1935, HTTP 8080)
# and b (RTMP 1936, HTTP 8081), sharing one object store. Ctrl-C stops everything.
#
#   bash examples/cluster/run.sh                   # uses target/release/livesnap
#   LIVESNAP=target/debug/livesnap bash examples/cluster/run.sh
#   ffmpeg -re -i fixtures/baseline_360p.flv -c copy -f flv 'rtmp://127.0.0.1:1935/live/cam?key=secret-key'
#
# Callbacks go to CALLBACK_URL (default http://127.0.0.1:9000/cb: run any receiver there).
set -euo pipefail
cd "$(dirname "$0")/../.."
LIVESNAP=${LIVESNAP:-target/release/livesnap}
CALLBACK_URL=${CALLBACK_URL:-http://127.0.0.1:9000/cb}
[[ -x $LIVESNAP ]] || cargo build --release -p livesnap
WORK=${WORK:-$(mktemp -d /tmp/livesnap-cluster.XXXXXX)}
mkdir -p "$WORK"
echo "state under $WORK"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

for i in 0 1 2; do
    routes=()
    for j in 0 1 2; do [[ $j == "$i" ]] || routes+=("\"nats-route://127.0.0.1:$((6222 + j))\""); done
    cat > "$WORK/n$i.conf" <<CONF
listen: "127.0.0.1:$((4222 + i))"
server_name: "n$i"
jetstream { store_dir: "$WORK/n$i" }
cluster {
  name: "livesnap"
  listen: "127.0.0.1:$((6222 + i))"
  routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
    nats-server -c "$WORK/n$i.conf" > "$WORK/n$i.log" 2>&1 &
    pids+=($!)
done
# The servers elect a JetStream leader within a few seconds.
for _ in $(seq 100); do
    grep -qs "metadata leader" "$WORK"/n*.log && break
    sleep 0.1
done

for node in a b; do
    rtmp=$([[ $node == a ]] && echo 1935 || echo 1936)
    http=$([[ $node == a ]] && echo 8080 || echo 8081)
    cat > "$WORK/$node.toml" <<TOML
[server]
rtmp = "127.0.0.1:$rtmp"
http = "127.0.0.1:$http"

[storage]
root = "$WORK/objects"

[callbacks]
spool_dir = "$WORK/spool-$node"

[cluster]
nats = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]
node = "$node"
lease_s = 10

[[tenant]]
app = "live"
uniqname = "acme"
publish_key = "secret-key"
bucket = "shots"
interval_s = 5
callback_url = "$CALLBACK_URL"
callback_secret = "change-me"
TOML
    "$LIVESNAP" serve --config "$WORK/$node.toml" > "$WORK/$node.log" 2>&1 &
    pids+=($!)
done
echo "nodes up: a rtmp://127.0.0.1:1935 http://127.0.0.1:8080, b rtmp://127.0.0.1:1936 http://127.0.0.1:8081"
echo "logs: $WORK/{a,b}.log, $WORK/n{0,1,2}.log"
wait -n "${pids[@]}"
