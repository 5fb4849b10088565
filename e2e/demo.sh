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

step "Done. The cluster and the webhook are still running"
cat <<TEXT
  export KUBECONFIG=$KUBECONFIG
  bin/kubectl get daemonsets -A
  tail -f .cluster/webhook.log          # one line per decision
  \$EDITOR .cluster/policy.yaml          # the webhook reloads it on save
  make cluster-down                     # stops every process the demo started
TEXT
