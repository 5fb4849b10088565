#!/usr/bin/env bash
# bench.sh: everything `make bench` measures, in one run on one machine, into
# one table: handler CPU against the baselines of the same run, then on the
# local cluster (webhook pinned to one core) API-server latency without
# admission, with daemonset-guard and with CEL admission policies; memory with
# BENCH_NODES (5,000) Nodes against caches of whole Nodes; HTTPS load at that
# size. The table goes to bin/bench.md and replaces the one in the README's
# Performance section.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
state=$root/.cluster
nodes=${BENCH_NODES:-5000}
rows=$bin/bench-rows.md
table=$bin/bench.md
export KUBECONFIG=$state/kubeconfig

log() { printf '>> %s\n' "$*"; }

mkdir -p "$bin"
: >"$rows"

log "handler benchmarks (5 runs, interleaved with their baselines)"
go -C "$root" test -run '^$' -bench 'BenchmarkHandlers' -benchmem -count 5 ./webhook/ | tee "$bin/bench.txt"
awk -v rows="$rows" -f "$root/hack/bench-median.awk" -f "$root/hack/bench-ratios.awk" "$bin/bench.txt"

log "placement cost cases (5 runs): unique-label fleet, 10,000 required terms"
{
	go -C "$root" test -run '^$' -bench 'BenchmarkCoverage/nodes=10000/fleet=.*/by-class' -count 5 ./webhook/inventory/
	go -C "$root" test -run '^$' -bench 'BenchmarkLargeAffinity' -count 5 ./webhook/
} | tee "$bin/bench-placement.txt"
awk -v rows="$rows" -f "$root/hack/bench-median.awk" -f "$root/hack/bench-placement.awk" "$bin/bench-placement.txt"

log "memory of the webhook's Node view alone at 5,000 and 50,000 realistic Nodes (in memory: no cluster here holds 50,000)"
"$bin/memprobe" view --counts 5000,50000 --rows "$rows"

# signal_control_plane sends a signal to every process of the local cluster
# but the webhook (kwokctl keeps their pids).
signal_control_plane() {
	local f
	for f in "$state"/kwok/clusters/*/pids/*.pid; do kill "-$1" "$(cat "$f")" 2>/dev/null || true; done
}
trap 'signal_control_plane CONT; "$root/e2e/local-cluster.sh" down' EXIT
# The controller manager's default API rate would take minutes to lift the
# not-ready taints of thousands of new Nodes.
KWOKCTL_ARGS="--extra-args kube-controller-manager=kube-api-qps=1000 --extra-args kube-controller-manager=kube-api-burst=1000" \
	WEBHOOK_CPUS=0 "$root/e2e/local-cluster.sh" up

log "API-server latency: no admission, daemonset-guard, CEL policies, a minimal controller-runtime webhook"
"$bin/apilatency" --kubeconfig "$KUBECONFIG" --rows "$rows" --webhook-cpus 0

log "memory with $nodes nodes and ${BENCH_DAEMONSETS:-1000} DaemonSets"
"$bin/memprobe" nodes --kubeconfig "$KUBECONFIG" --count "$nodes"
"$bin/memprobe" daemonsets --kubeconfig "$KUBECONFIG" --count "${BENCH_DAEMONSETS:-1000}"
WEBHOOK_CPUS=0 "$root/e2e/local-cluster.sh" restart-webhook
"$bin/memprobe" measure --kubeconfig "$KUBECONFIG" --webhook-pid-file "$state/webhook.pid" --rows "$rows"

# On two cores, the API server, etcd and kwok renewing thousands of node
# leases would take much of the webhook's core. Paused, they leave it the
# core it would have on its own node; its inventory keeps every node.
signal_control_plane STOP
for path in validate mutate; do
	log "HTTPS load on /$path-apps-v1-daemonset with $nodes nodes (webhook on core 0, load on core 1, control plane paused)"
	policy=()
	if [ "$path" = validate ]; then policy=(--policy-file "$state/policy.yaml"); fi
	taskset -c 1 "$bin/loadgen" --url "https://127.0.0.1:19443/$path-apps-v1-daemonset" --ca "$state/certs/ca.crt" \
		"${policy[@]}" --duration 10s --rows "$rows" --label "$path, $nodes nodes, one core (goal ≥ 3,000 req/s; p99 < 5 ms at 8 connections)"
done
signal_control_plane CONT

{
	printf '_%s; %s, %s cores; %s; %s._\n\n' "$(date -u +%Y-%m-%d)" \
		"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" "$(nproc)" "$(go version | cut -d' ' -f3-)" "$(uname -sr)"
	printf '| Measurement | daemonset-guard | Baseline (same run) | Ratio |\n|---|---|---|---|\n'
	cat "$rows"
} >"$table"
cat "$table"

# The README keeps the latest table between two markers.
awk -v table="$table" '
	/<!-- bench-table:end -->/ { while ((getline line < table) > 0) print line; skip = 0 }
	!skip { print }
	/<!-- bench-table:start -->/ { skip = 1 }
' "$root/README.md" >"$root/README.md.tmp"
mv "$root/README.md.tmp" "$root/README.md"
log "the table is in $table and in README.md"
