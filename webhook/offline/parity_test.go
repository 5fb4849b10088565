package offline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/generate"
	"github.com/daemonset-guard/daemonset-guard/internal/seed"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/priorityclass"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

var examplePolicy = filepath.Join("..", "policy", "testdata", "example.yaml")

// decodeAll reads every document of a YAML file into values made by newItem.
func decodeAll[T any](t *testing.T, path string) []*T {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*T
	for {
		v := new(T)
		if err := dec.Decode(v); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
}

// warnings are a result's warnings as the API server relays them.
func warnings(res *offline.Result) []string {
	var out []string
	for _, f := range res.Findings {
		if f.Action == policy.Warn {
			out = append(out, "["+f.Rule+"] "+f.Field+": "+f.Message)
		}
	}
	return out
}

func corpusNodes(t *testing.T) []*corev1.Node {
	t.Helper()
	lists := decodeAll[corev1.NodeList](t, filepath.Join("testdata", "nodes.yaml"))
	var nodes []*corev1.Node
	for i := range lists[0].Items {
		nodes = append(nodes, &lists[0].Items[i])
	}
	return nodes
}

// TestOfflineAnswersEqualTheWebhookThroughTheAPIServer sends every DaemonSet
// of the corpus to the running webhooks through a real API server and to the
// offline check, with the same nodes and policy, and asserts the same
// verdict, the same warnings and the same resulting object; then does the
// same with 100 generated DaemonSets (PROPERTY_SEED replays them), whose
// mutated form the API server must accept.
func TestOfflineAnswersEqualTheWebhookThroughTheAPIServer(t *testing.T) {
	wh := testenv.StartWebhook(t, examplePolicy)
	ctx := context.Background()
	g := NewWithT(t)
	nodes := corpusNodes(t)
	testenv.CreateReadyNodes(t, wh.Client, nodes...)
	for _, ns := range []string{"corpus", "monitoring"} {
		_, err := wh.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	// Longhorn's chart creates its own class.
	_, err := wh.Client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: "longhorn-critical"}, Value: 1000000000}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	classList, err := wh.Client.SchedulingV1().PriorityClasses().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	pol, err := policy.Load(examplePolicy, rules.Builtin())
	g.Expect(err).NotTo(HaveOccurred())
	ev := offline.Evaluator{Rules: rules.Builtin(), Policy: pol, Nodes: inventory.New(nodes...), PriorityClasses: priorityclass.New(classList.Items...)}

	corpus := decodeAll[appsv1.DaemonSet](t, filepath.Join("testdata", "corpus.yaml"))
	g.Expect(len(corpus)).To(BeNumerically(">=", 30))
	// The webhook's inventory and PriorityClasses follow the cluster
	// through their informers: wait until it answers as the offline check.
	g.Eventually(func() []string {
		_, _ = wh.Client.AppsV1().DaemonSets("corpus").Create(ctx, corpus[0].DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return wh.Warnings.Take()
	}, 10*time.Second, 100*time.Millisecond).Should(Equal(warnings(ev.Evaluate(corpus[0]))))

	// compare sends ds through the API server and the offline check, and
	// reports whether both denied it.
	compare := func(t *testing.T, ds *appsv1.DaemonSet) (denied bool) {
		g := NewWithT(t)
		want := ev.Evaluate(ds)
		g.Expect(want.Verdict).NotTo(Equal(offline.Failed), want.Error)
		g.Expect(want.RuleErrors).To(BeEmpty())

		// Sent as a server-side apply of the file, which is what check
		// predicts: what the file sets is the applier's. Not as manager
		// "kubectl": the API server rewrites the last-applied annotation of
		// kubectl's server-side applies, and the corpus has objects that
		// stand for client-side applies with that annotation.
		applied := ds.DeepCopy()
		applied.APIVersion, applied.Kind = "apps/v1", "DaemonSet"
		body, err := json.Marshal(applied)
		g.Expect(err).NotTo(HaveOccurred())
		wh.Warnings.Take()
		got, err := wh.Client.AppsV1().DaemonSets(ds.Namespace).Patch(ctx, ds.Name, types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "parity-test", DryRun: []string{metav1.DryRunAll}})
		g.Expect(wh.Warnings.Take()).To(Equal(warnings(want)), "the same warnings")
		if want.Verdict == offline.Denied {
			g.Expect(err).To(HaveOccurred(), "the webhook denies what the offline check denies")
			for _, f := range want.Findings {
				if f.Action == policy.Deny {
					g.Expect(err.Error()).To(ContainSubstring(f.Field+": Forbidden: ["+f.Rule+"] "+f.Message), "the same denial")
				}
			}
			return true
		}
		g.Expect(err).NotTo(HaveOccurred(), "the webhook admits what the offline check admits")
		g.Expect(equality.Semantic.DeepEqual(got.Spec, want.Admitted.Spec)).To(BeTrue(), "the same spec:\n webhook %+v\n offline %+v", got.Spec, want.Admitted.Spec)
		// The API server's registry adds its own bookkeeping annotation.
		delete(got.Annotations, appsv1.DeprecatedTemplateGeneration)
		if len(got.Annotations) == 0 {
			got.Annotations = nil
		}
		g.Expect(got.Annotations).To(Equal(want.Admitted.Annotations), "the same annotations")
		return false
	}

	denied := 0
	for _, ds := range corpus {
		t.Run(ds.Name, func(t *testing.T) {
			if compare(t, ds) {
				denied++
			}
		})
	}
	g.Expect(denied).To(BeNumerically(">", 0), "the corpus exercises denials too")

	// A sample of the property tests' generated DaemonSets: the mutated
	// object is one the real API server accepts, and the verdicts agree.
	rng := seed.Rand(t)
	admitted := 0
	for i := range 100 {
		ds := generate.DaemonSet(rng, i)
		ds.Namespace = "corpus"
		t.Run(ds.Name, func(t *testing.T) {
			if !compare(t, ds) {
				admitted++
			}
		})
	}
	g.Expect(admitted).To(BeNumerically(">", 50), "most generated DaemonSets are admitted, so the sample checks the API server's acceptance")
}
