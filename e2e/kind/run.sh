#!/usr/bin/env bash
# run.sh: the e2e suite on kind, the way a user installs daemonset-guard.
# Needs Docker, kind and network access (the cert-manager release manifest,
# the e2e suite's images); these CI machines have neither, so `make test`
# runs the same suite on the local kwok cluster instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cluster=${KIND_CLUSTER:-daemonset-guard-e2e}
kind=${KIND:-kind}
kubectl=${KUBECTL:-$root/bin/kubectl}
cert_manager=${CERT_MANAGER_VERSION:?set by make}
export KUBECONFIG=$root/.cluster/kind-kubeconfig
mkdir -p "$root/.cluster"

if [ -z "${KEEP_CLUSTER:-}" ]; then
	trap '"$kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true' EXIT
fi
"$kind" delete cluster --name "$cluster" >/dev/null 2>&1 || true
"$kind" create cluster --name "$cluster" --config "$root/e2e/kind/cluster.yaml" --kubeconfig "$KUBECONFIG" --wait 120s

make -C "$root" docker-build IMG=daemonset-guard:e2e
"$kind" load docker-image daemonset-guard:e2e --name "$cluster"

"$kubectl" apply -f "https://github.com/cert-manager/cert-manager/releases/download/$cert_manager/cert-manager.yaml"
"$kubectl" -n cert-manager rollout status deployment --timeout=180s

"$kubectl" apply -k "$root/e2e/testdata"
"$kubectl" -n daemonset-guard-system wait certificate --all --for=condition=Ready --timeout=120s
"$kubectl" -n daemonset-guard-system rollout status deployment/daemonset-guard --timeout=180s
# A ready replica registers the webhooks into the configurations the
# manifests ship empty.
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
	"$kubectl" wait "$kind/daemonset-guard" --for=jsonpath='{.webhooks[0].clientConfig.service.name}'=daemonset-guard --timeout=60s
done

# Adding nodes needs kwok to play their kubelets; on kind a Node object made
# by the suite would stay NotReady, so those tests run on the local cluster only.
KUBECTL=$kubectl E2E_POLICY_CONFIGMAP=daemonset-guard-system/daemonset-guard-policy \
	go -C "$root" test -tags e2e -count=1 -timeout 30m -v -skip '^(TestADaemonPodAtOrdinaryPriorityWaitsOnAFullNodeAndOneAtNodeCriticalPreempts|TestALinuxAgentWithoutAnOSSelectorIsWarnedOfTheWindowsNodeItLandsOn|TestANewNodeGetsAPodAndThePredictionFollows|TestARolloutPredictedToStallStallsAndTheNamedFixFinishesIt|TestInventoryFollowsNodesAcrossAnAPIServerRestart|TestPlacementEqualsTheController)$' ./e2e/
