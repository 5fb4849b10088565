#!/usr/bin/env bash
# local-cluster.sh up|down: a real control plane on the host (kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, all built from Go modules
# into bin/) with kwok simulating 20 nodes and their kubelets, and
# daemonset-guard running on the host, registered with the webhook
# configuration of manifests/base.
#
# Everything lives under .cluster/ (gitignored): the kubeconfig, kwokctl's
# state, the webhook's certificates, log and pid. `down` stops every process
# that `up` started, also after a failed run. `restart-webhook` restarts only
# daemonset-guard, which then lists the cluster's nodes afresh, as a replica
# does that starts into a cluster that has grown (make bench-memory).
# WEBHOOK_ARGS adds flags to daemonset-guard's command line, for example
# --pprof-bind-address=127.0.0.1:18082 to profile it under load.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
state=$root/.cluster
name=${CLUSTER_NAME:-daemonset-guard}
port=${WEBHOOK_PORT:-19443}
probe=${WEBHOOK_PROBE_ADDRESS:-127.0.0.1:18081}
metrics=${WEBHOOK_METRICS_ADDRESS:-127.0.0.1:18080}
policy_source=${POLICY_FILE:-$root/e2e/testdata/policy.yaml}
# The webhook watches a copy, which the e2e suite and a curious user may edit
# without touching the repository.
policy=$state/policy.yaml

export KWOK_WORKDIR=$state/kwok
export KWOK_KUBE_VERSION=${KWOK_KUBE_VERSION:-v1.37.2}
export KUBECONFIG=$state/kubeconfig

kubectl() { "$bin/kubectl" "$@"; }

log() { printf '>> %s\n' "$*"; }

stop_webhook() {
	if [ -f "$state/webhook.pid" ]; then
		local pid
		pid=$(cat "$state/webhook.pid")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$state/webhook.pid"
	fi
}

down() {
	stop_webhook
	rm -f "$state/daemonset-guard"
	if [ -d "$KWOK_WORKDIR/clusters/$name" ]; then
		log "deleting cluster $name"
		"$bin/kwokctl" delete cluster --name "$name" >/dev/null 2>&1 || true
	fi
	rm -rf "$KWOK_WORKDIR" "$state/kubeconfig" "$state/certs" "$state/policy.yaml"
}

# nodes prints 20 Node manifests shaped like a real cluster's pools: three
# tainted control-plane nodes, ssd and hdd workers in three zones, and a
# tainted gpu pool. All carry kwok's annotation, so kwok plays their kubelets
# and reports them Ready.
nodes() {
	local i=0 role zone
	node() { # name, labels..., then "--" and taints
		local n=$1
		shift
		printf -- '---\napiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  annotations: {kwok.x-k8s.io/node: fake}\n  labels:\n    kubernetes.io/hostname: %s\n    kubernetes.io/os: linux\n    type: kwok\n' "$n" "$n"
		while [ $# -gt 0 ] && [ "$1" != -- ]; do printf '    %s\n' "$1"; shift; done
		[ $# -gt 0 ] && shift
		printf 'spec:\n  taints: [%s]\n' "$(IFS=,; echo "$*")"
	}
	for i in 1 2 3; do
		node "control-plane-$i" "node-role.kubernetes.io/control-plane: \"\"" "topology.kubernetes.io/zone: zone-$i" -- "{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}"
	done
	for i in $(seq 1 8); do
		zone=zone-$(( (i % 3) + 1 ))
		node "ssd-$i" "disktype: ssd" "topology.kubernetes.io/zone: $zone" --
	done
	for i in $(seq 1 6); do
		zone=zone-$(( (i % 3) + 1 ))
		node "hdd-$i" "disktype: hdd" "topology.kubernetes.io/zone: $zone" --
	done
	for i in 1 2 3; do
		role="{key: nvidia.com/gpu, value: present, effect: NoSchedule}"
		node "gpu-$i" "disktype: ssd" "nvidia.com/gpu.present: \"true\"" "topology.kubernetes.io/zone: zone-$i" -- "$role"
	done
}

# ready asks /readyz with bash alone: a fresh machine may have no curl.
ready() {
	local status
	{ exec 3<>"/dev/tcp/${probe%:*}/${probe##*:}"; } 2>/dev/null || return 1
	printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$probe" >&3
	read -r _ status _ <&3 || true
	exec 3<&-
	[ "$status" = 200 ]
}

wait_ready() {
	for _ in $(seq 300); do
		if ready; then return 0; fi
		if ! kill -0 "$(cat "$state/webhook.pid")" 2>/dev/null; then
			echo "daemonset-guard exited; its log:" >&2
			tail -n 50 "$state/webhook.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "daemonset-guard did not become ready in 30s; its log:" >&2
	tail -n 50 "$state/webhook.log" >&2
	return 1
}

# start_webhook starts daemonset-guard with the certificates and policy that
# up prepared, and waits until it is ready.
start_webhook() {
	log "starting daemonset-guard on https://127.0.0.1:$port (log: .cluster/webhook.log)"
	# WEBHOOK_CPUS pins the webhook (make bench-load gives it one core and the
	# load generator the other).
	local pin=()
	if [ -n "${WEBHOOK_CPUS:-}" ] && command -v taskset >/dev/null; then pin=(taskset -c "$WEBHOOK_CPUS"); fi
	# It runs from a copy, written as a container runtime writes an image's
	# files. go build's output is still in the page cache as its linker
	# wrote it, through a memory mapping, and Linux (6.18 on ext4 here) then
	# maps far more of the file at each page fault: run straight from bin/
	# after a build, the webhook had 50 MiB of file-backed RSS at 5,000
	# Nodes, against 37 MiB for a copy of the same binary. The copy is
	# renamed into place: a process killed a moment ago may still hold the
	# old file, which cannot be written while it runs.
	cp "$bin/daemonset-guard" "$state/daemonset-guard.new"
	mv -f "$state/daemonset-guard.new" "$state/daemonset-guard"
	# Metrics in plain HTTP on loopback: the suite, the soak and the load
	# generator on this host read them; the manifests keep them behind
	# authentication (tested in manifests/install_test.go).
	"${pin[@]}" "$state/daemonset-guard" --kubeconfig "$KUBECONFIG" --webhook-port "$port" --webhook-cert-dir "$state/certs" \
		--health-probe-bind-address "$probe" --metrics-bind-address "$metrics" --metrics-secure=false --policy-file "$policy" ${WEBHOOK_ARGS:-} \
		>>"$state/webhook.log" 2>&1 &
	echo $! >"$state/webhook.pid"
	wait_ready
}

# restart_webhook replaces the running daemonset-guard with a new process;
# the webhook configurations stay registered.
restart_webhook() {
	if [ ! -f "$state/webhook.pid" ]; then
		echo "no daemonset-guard is running: start the cluster with $0 up" >&2
		return 1
	fi
	stop_webhook
	start_webhook
}

up() {
	mkdir -p "$state"
	# A killed run leaves a cluster and a webhook behind: start clean.
	down
	log "starting cluster $name (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok)"
	# KWOKCTL_ARGS adds flags to kwokctl create cluster. By default:
	# - it lifts kube-controller-manager's API rate limit from 20 requests a
	#   second, which only makes the controllers slower: the e2e parity
	#   test's 500 DaemonSets took the DaemonSet controller 85 s at 20;
	# - kwok plays the kubelet only of nodes annotated kwok.x-k8s.io/node=fake
	#   (all of up's), so that a test can add a node whose kubelet it plays
	#   and then lets die;
	# - the API server runs the PodNodeSelector and PodTolerationRestriction
	#   admission plugins, which namespace-placement predicts;
	# - node heartbeats run at Kubernetes' own pace (a 40 s lease and grace
	#   period), not kwokctl's default of five times slower, so that the
	#   node lifecycle controller marks such a node unreachable in under a
	#   minute.
	# kwokctl 0.8 mixes up components whose first --extra-args is not in
	# the order of first appearance (an index out of range), hence the order.
	# make bench-memory sets its own, at kwokctl's pace for its 5,000 nodes.
	local extra=()
	read -ra extra <<<"${KWOKCTL_ARGS:---heartbeat-factor 1 --extra-args kube-controller-manager=kube-api-qps=200 --extra-args kwok-controller=manage-all-nodes=false --extra-args kube-apiserver=enable-admission-plugins=PodNodeSelector,PodTolerationRestriction --extra-args kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake --extra-args kube-controller-manager=kube-api-burst=400}"
	"$bin/kwokctl" create cluster --name "$name" --runtime binary "${extra[@]}" \
		--kube-apiserver-binary "$bin/kube-apiserver" \
		--kube-controller-manager-binary "$bin/kube-controller-manager" \
		--kube-scheduler-binary "$bin/kube-scheduler" \
		--etcd-binary "$bin/etcd" \
		--kwok-controller-binary "$bin/kwok" \
		--kubeconfig "$KUBECONFIG" --wait 60s >"$state/kwokctl.log" 2>&1 || {
		cat "$state/kwokctl.log" >&2
		return 1
	}
	log "adding 20 nodes"
	nodes | kubectl apply -f - >/dev/null
	kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null
	# New nodes carry node.kubernetes.io/not-ready:NoSchedule until the node
	# lifecycle controller sees them Ready; daemon pods do not tolerate it, so
	# predictions made before it is gone are right but surprising.
	for _ in $(seq 120); do
		if ! kubectl get nodes -o jsonpath='{.items[*].spec.taints[*].key}' | grep -q node.kubernetes.io/not-ready; then break; fi
		sleep 0.5
	done

	"$bin/localwebhook" certs --dir "$state/certs"
	cp "$policy_source" "$policy"
	: >"$state/webhook.log"
	start_webhook
	# Registered only once it serves: the validating webhook fails closed.
	"$bin/localwebhook" register --kubeconfig "$KUBECONFIG" --manifest "$root/manifests/webhooks.yaml" \
		--url "https://127.0.0.1:$port" --ca "$state/certs/ca.crt"
	log "cluster $name is up: export KUBECONFIG=$KUBECONFIG"
}

case ${1:-} in
up) up ;;
down) down ;;
restart-webhook) restart_webhook ;;
*)
	echo "usage: $0 up|down|restart-webhook" >&2
	exit 2
	;;
esac
