package webhook

import (
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// TestDecisionLogsCarryNoObjectBodyNorUserInfo reads what both webhooks log
// at info level for a review whose object holds a secret-looking environment
// value and whose requester is named: one line per decision, naming the
// request, and nothing of the object's body or of the user.
func TestDecisionLogsCarryNoObjectBodyNorUserInfo(t *testing.T) {
	var lines []string
	log := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) }, funcr.Options{Verbosity: 0})
	metrics, err := NewMetrics(prometheus.NewRegistry(), inventory.New(), rules.Builtin().Names())
	if err != nil {
		t.Fatal(err)
	}
	mutator, validator := newHandlers(handler{rules: rules.Builtin(), policy: policy.NewStore(policy.Default(rules.Builtin())), nodes: inventory.New(cluster()...), metrics: metrics}, log)
	r := routes(mutator, validator, DefaultRequestTimeout)
	ds := fixture.DaemonSet("fluentd", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", Value: "s3cr3t-value"}}
	})
	body := reviewBody("CREATE", ds, nil, "")
	for _, path := range []string{MutatePath, ValidatePath} {
		review(t, r[path], body, "application/json")
	}

	if len(lines) != 2 {
		t.Fatalf("want one line per decision, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, line := range lines {
		if !strings.Contains(line, `"decision"`) || !strings.Contains(line, "705ab4f5-6393-11e8-b7cc-42010a800002") {
			t.Errorf("a decision line names the request's uid: %s", line)
		}
		for _, leak := range []string{"s3cr3t-value", "TOKEN", "fluent/fluentd-kubernetes-daemonset", "admin", "userInfo"} {
			if strings.Contains(line, leak) {
				t.Errorf("the log line carries %q: %s", leak, line)
			}
		}
	}
}
