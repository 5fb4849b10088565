#!/usr/bin/env bash
# demo.sh: a short, scripted walk through daemonset-guard on the local
# cluster (which `make demo` has started). DEMO_NONINTERACTIVE=1, or no
# terminal, runs straight through without pauses.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=$root/.cluster/kubeconfig
kubectl() { "$root/bin/kubectl" "$@"; }

interactive=false
if [ -t 0 ] && [ -t 1 ] && [ -z "${DEMO_NONINTERACTIVE:-}" ]; then interactive=true; fi
if [ -t 1 ]; then bold=$'\e[1m' dim=$'\e[2m' reset=$'\e[0m'; else bold='' dim='' reset=''; fi

step() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$reset"; }
say() { printf '%s\n' "$*"; }
run() {
	printf '%s$ %s%s\n' "$dim" "$*" "$reset"
	"$@"
}
# apply shows a manifest and pipes it to kubectl with the given arguments.
apply() {
	local doc=$1
	shift
	printf '%s%s%s\n' "$dim" "$(printf '%s\n' "$doc" | sed '/^$/d; s/^/    /')" "$reset"
	printf '%s$ kubectl %s -f -%s\n' "$dim" "$*" "$reset"
	printf '%s\n' "$doc" | kubectl "$@" -f -
}
pause() { if $interactive; then read -r -p "${dim}(enter to go on)${reset} " _; fi; }

manifest() { # name, extra spec.template.spec lines, extra spec lines
	cat <<YAML
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: $1, namespace: demo}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: $1}}
${3:-}
  template:
    metadata: {labels: {app.kubernetes.io/name: $1}}
    spec:
      containers: [{name: $1, image: ${IMAGE:-fluent/fluent-bit:3.2}}]
${2:-}
YAML
}

step "A cluster of 20 kwok nodes: 3 control plane (tainted), ssd and hdd workers, a tainted gpu pool"
run kubectl get nodes -L disktype,topology.kubernetes.io/zone --no-headers | awk '{printf "  %-16s %-8s %-7s %s\n", $1, $3, $6, $7}'
run kubectl create namespace demo
pause

step "1. Create a log collector: the webhook predicts its nodes and injects the policy's defaults"
say "(It also warns that, without a priorityClassName, its pods would wait forever on a full node.)"
say "The same manifest, as the API server stores it with and without the webhook ('daemonset-guard.io/skip: \"*\"'):"
manifest fluent-bit | kubectl create --dry-run=server -o yaml -f - >"$root/.cluster/demo-mutated.yaml"
manifest fluent-bit | sed 's|^metadata: {name: fluent-bit, namespace: demo}|metadata: {name: fluent-bit, namespace: demo, annotations: {daemonset-guard.io/skip: "*"}}|' |
	kubectl create --dry-run=server -o yaml -f - 2>/dev/null | grep -v 'daemonset-guard.io/skip\|^  annotations:' >"$root/.cluster/demo-plain.yaml"
diff -u "$root/.cluster/demo-plain.yaml" "$root/.cluster/demo-mutated.yaml" | grep '^[-+] ' | grep -v ' uid: \| creationTimestamp: ' || true
say ""
apply "$(manifest fluent-bit)" apply
pause

step "2. A rollout that would take down too many nodes at once: a warning"
apply "$(manifest node-exporter '' '  updateStrategy: {rollingUpdate: {maxUnavailable: "60%"}}')" apply --dry-run=server
pause

step "3. A DaemonSet that would run on no node: denied, with the reasons"
apply "$(manifest nvme-agent '      nodeSelector: {disktype: nvme}')" apply || true
pause

step "4. A rolling update obeys the injected maxUnavailable (20% of the nodes, 3s of readiness each)"
# status prints generation|observedGeneration|desired|updated|available|
# unavailable; a count of zero is left out by the API, hence the separators.
# It prints no newline, so the reads below report end of input: expected.
status() {
	kubectl -n demo get daemonset fluent-bit -o jsonpath='{.metadata.generation}|{.status.observedGeneration}|{.status.desiredNumberScheduled}|{.status.updatedNumberScheduled}|{.status.numberAvailable}|{.status.numberUnavailable}'
}
# Start from a settled DaemonSet: every pod ready for minReadySeconds.
for _ in $(seq 60); do
	IFS='|' read -r generation observed desired updated available _ < <(status) || true
	if [ "$generation" = "$observed" ] && [ "${available:-0}" = "$desired" ]; then break; fi
	sleep 1
done
run kubectl -n demo set image daemonset/fluent-bit fluent-bit=fluent/fluent-bit:3.3
for _ in $(seq 120); do
		IFS='|' read -r generation observed desired updated available unavailable < <(status) || true
	[ "$generation" = "$observed" ] || { sleep 0.2; continue; }
	printf '  updated %2s/%s  available %2s  unavailable %s\n' "${updated:-0}" "$desired" "${available:-0}" "${unavailable:-0}"
	if [ "${updated:-0}" = "$desired" ] && [ "${available:-0}" = "$desired" ]; then break; fi
	sleep 1
done
run kubectl -n demo rollout status daemonset/fluent-bit --timeout=60s

step "5. A node pool relabelled under a running DaemonSet: one Event says it now runs nowhere"
apply "$(manifest ssd-agent '      nodeSelector: {disktype: ssd}
      tolerations: [{key: nvidia.com/gpu, operator: Exists}]
      priorityClassName: system-node-critical')" apply
run kubectl label nodes -l disktype=ssd disktype=nvme --overwrite
say "The webhook's leader re-evaluates every DaemonSet once the nodes settle (2 s):"
for _ in $(seq 30); do
	[ -n "$(kubectl -n demo get events --field-selector reason=NoEligibleNodes -o name)" ] && break
	sleep 1
done
run kubectl -n demo events --for daemonset/ssd-agent --types Warning
run kubectl label nodes -l disktype=nvme disktype=ssd --overwrite
pause

step "6. A rollout that would stall for good: two nodes lose their kubelet"
say "Five edge nodes run an agent at maxUnavailable 1. kwok plays three kubelets; this script plays the"
say "other two, then stops, as a kubelet that dies does."
edge_node() { # name, kwok or not
	local annotation=''
	[ "$2" = kwok ] && annotation='annotations: {kwok.x-k8s.io/node: fake}'
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $1
  labels: {kubernetes.io/hostname: $1, kubernetes.io/os: linux, pool: edge}
  $annotation
spec:
  taints: [{key: pool, value: edge, effect: NoSchedule}]
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
YAML
}
for i in 1 2 3; do edge_node "edge-$i" kwok; done
for i in 4 5; do edge_node "edge-$i" script; done
# kubelet reports edge-4 and edge-5 Ready and their daemon pods running.
kubelet() {
	local now
	while :; do
		now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
		for n in edge-4 edge-5; do
			kubectl patch node "$n" --subresource=status --type=merge \
				-p "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" >/dev/null 2>&1 || true
		done
		for pod in $(kubectl -n demo get pods -o jsonpath='{range .items[?(@.status.phase=="Pending")]}{.metadata.name}{"|"}{.spec.nodeName}{"\n"}{end}' | awk -F'|' '$2 == "edge-4" || $2 == "edge-5" {print $1}'); do
			kubectl -n demo patch pod "$pod" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Running\",\"startTime\":\"$now\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},{\"type\":\"ContainersReady\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}],\"containerStatuses\":[{\"name\":\"edge-agent\",\"image\":\"fluent/fluent-bit:3.2\",\"imageID\":\"\",\"ready\":true,\"restartCount\":0,\"state\":{\"running\":{\"startedAt\":\"$now\"}}}]}}" >/dev/null 2>&1 || true
		done
		sleep 2
	done
}
kubelet &
kubelet_pid=$!
kubectl wait --for=condition=Ready node -l pool=edge --timeout=60s >/dev/null
# Then the node lifecycle controller lifts the not-ready taint new nodes get.
for _ in $(seq 60); do
	kubectl get nodes -l pool=edge -o jsonpath='{.items[*].spec.taints[*].key}' | grep -q node.kubernetes.io/not-ready || break
	sleep 1
done
apply "$(manifest edge-agent '      nodeSelector: {pool: edge}
      tolerations: [{key: pool, operator: Exists}]
      priorityClassName: system-node-critical' '  updateStrategy: {rollingUpdate: {maxUnavailable: 1}}')" apply
for _ in $(seq 60); do
	[ "$(kubectl -n demo get daemonset edge-agent -o jsonpath='{.status.numberAvailable}')" = 5 ] && break
	sleep 1
done
run kubectl -n demo get pods -l app.kubernetes.io/name=edge-agent -o wide --no-headers
kill "$kubelet_pid"
wait "$kubelet_pid" 2>/dev/null || true
say "The kubelets of edge-4 and edge-5 stop; the node lifecycle controller marks them unreachable after 40 s:"
for _ in $(seq 90); do
	[ "$(kubectl -n demo get daemonset edge-agent -o jsonpath='{.status.numberMisscheduled}')" = 2 ] && break
	sleep 1
done
run kubectl get nodes -l pool=edge
say "An image update now: the webhook says, before anything moves, that it will stall."
run kubectl -n demo set image daemonset/edge-agent edge-agent=fluent/fluent-bit:3.3
sleep 15
run kubectl -n demo get pods -l app.kubernetes.io/name=edge-agent -o wide --no-headers
say "Two old pods wait to terminate on nodes without a kubelet, using up maxUnavailable: no healthy node"
say "gets the new image. The fix the warning names:"
run kubectl -n demo patch daemonset edge-agent --type=merge -p '{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":3}}}}'
for _ in $(seq 60); do
	[ "$(kubectl -n demo get daemonset edge-agent -o jsonpath='{.status.updatedNumberScheduled}')" = 3 ] && break
	sleep 1
done
run kubectl -n demo get pods -l app.kubernetes.io/name=edge-agent -o wide --no-headers
pause

step "Done. The cluster and the webhook are still running"
cat <<TEXT
  export KUBECONFIG=$KUBECONFIG
  bin/kubectl get daemonsets -A
  tail -f .cluster/webhook.log          # one line per decision
  \$EDITOR .cluster/policy.yaml          # the webhook reloads it on save
  make cluster-down                     # stops every process the demo started
TEXT
