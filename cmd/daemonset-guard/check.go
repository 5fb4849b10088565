package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/webhook/inventory"
	"github.com/daemonset-guard/daemonset-guard/webhook/namespaces"
	"github.com/daemonset-guard/daemonset-guard/webhook/offline"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/priorityclass"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// exitCode sums up the results of check or audit: a denial is certain
// whatever else failed, so it comes first; then anything that could not be
// evaluated.
func exitCode[R any](results []R, result func(R) offline.Result) int {
	code := exitAdmitted
	for _, each := range results {
		switch r := result(each); {
		case r.Verdict == offline.Denied:
			return exitDenied
		case r.Verdict == offline.Failed || len(r.RuleErrors) > 0:
			code = exitUnevaluated
		}
	}
	return code
}

// CheckReport is the JSON and YAML output of check: stable, documented in
// the README.
type CheckReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// NodesEvaluated is false when no nodes were given.
	NodesEvaluated bool          `json:"nodesEvaluated"`
	Results        []CheckResult `json:"results"`
	// Skipped lists the objects that are not DaemonSets.
	Skipped []string `json:"skipped,omitempty"`
}

// CheckResult is the answer for one DaemonSet.
type CheckResult struct {
	Source string `json:"source"`
	offline.Result
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runCheck(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("daemonset-guard check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files stringList
	fs.Var(&files, "f", "DaemonSets to check: a file, a directory of .yaml/.yml/.json files, or - for standard input; repeatable.")
	nodesFile := fs.String("nodes", "", "Nodes to place the DaemonSets on, as kubectl get nodes -o yaml prints them.")
	kubeconfig := fs.String("kubeconfig", "", "Read the nodes from this cluster instead of --nodes, and judge each DaemonSet that exists there as an update of the live object, as kubectl diff does.")
	kubeContext := fs.String("context", "", "As --kubeconfig, with this context of the kubeconfig ($KUBECONFIG or ~/.kube/config without --kubeconfig), as kubectl's --context.")
	namespace := fs.String("n", metav1.NamespaceDefault, "Namespace of the DaemonSets whose files set none, as kubectl apply -n.")
	liveFile := fs.String("live-objects", "", "Judge each DaemonSet found in this file (as kubectl get ds -A -o yaml prints them) as an update of it; without --kubeconfig.")
	var common offlineFlags
	common.bind(fs, "text", "json", "yaml")
	patched := fs.String("patched", "", "Write the mutated DaemonSets (without the API server's defaults) to this file, - for standard output.")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: daemonset-guard check -f FILE|DIR|- [-f ...] [-n NAMESPACE] [--nodes FILE] [--live-objects FILE] | [--kubeconfig FILE] [--context NAME] [--policy-file FILE] [-o text|json|yaml] [--patched FILE]")
		fs.PrintDefaults()
	}
	fail := func(err error) int { return failure(stderr, "check", err) }
	catalog, pol, err := common.parse(fs, args)
	if err != nil {
		return fail(err)
	}
	switch {
	case len(files) == 0:
		return fail(errors.New("no input: give -f FILE, -f DIR or -f -"))
	case *nodesFile != "" && (*kubeconfig != "" || *kubeContext != ""):
		return fail(errors.New("give --nodes or a cluster (--kubeconfig, --context), not both"))
	case *liveFile != "" && (*kubeconfig != "" || *kubeContext != ""):
		return fail(errors.New("give --live-objects or a cluster (--kubeconfig, --context), not both: the cluster has the live objects"))
	}

	// Without a cluster named, check stays offline: it often runs in CI,
	// where a kubeconfig found by default may be anyone's.
	var client kubernetes.Interface
	if *kubeconfig != "" || *kubeContext != "" {
		cfg, err := cliConfig(*kubeconfig, *kubeContext)
		if err != nil {
			return fail(err)
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			return fail(err)
		}
	}
	nodes, err := loadNodes(*nodesFile, client, stdin)
	if err != nil {
		return fail(err)
	}
	live, err := liveObjects(*liveFile, client, stdin)
	if err != nil {
		return fail(err)
	}
	docs, err := readDocuments(files, stdin)
	if err != nil {
		return fail(err)
	}
	report := CheckReport{APIVersion: policy.APIVersion, Kind: "CheckReport", NodesEvaluated: nodes != nil}
	ev := offline.Evaluator{Rules: catalog, Policy: pol}
	if nodes != nil {
		ev.Nodes = nodes // a nil *Inventory is not a nil rules.Nodes
	}
	if client != nil {
		if err := clusterViews(context.Background(), client, "", &ev); err != nil {
			return fail(err)
		}
	}
	var patchedDocs [][]byte
	for _, doc := range docs {
		if doc.kind != "DaemonSet" {
			report.Skipped = append(report.Skipped, fmt.Sprintf("%s: %s is not a DaemonSet", doc.source, doc.kind))
			continue
		}
		ds, err := decodeDaemonSet(doc, *namespace)
		if err != nil {
			return fail(err)
		}
		stored, err := live(ds.Namespace, ds.Name)
		if err != nil {
			return fail(err)
		}
		res := ev.Evaluate(ds)
		if stored != nil {
			res = ev.EvaluateUpdate(ds, stored)
		}
		report.Results = append(report.Results, CheckResult{Source: doc.source, Result: *res})
		patchedDoc, err := patchedOrWritten(res, doc)
		if err != nil {
			return fail(err)
		}
		patchedDocs = append(patchedDocs, patchedDoc)
	}

	if *patched != "" {
		if err := writePatched(*patched, patchedDocs, stdout); err != nil {
			return fail(err)
		}
	}
	if err := writeCheckReport(stdout, report, common.output, isTerminal(stdout)); err != nil {
		return fail(err)
	}
	return exitCode(report.Results, func(r CheckResult) offline.Result { return r.Result })
}

func decodeDaemonSet(doc document, namespace string) (*appsv1.DaemonSet, error) {
	ds := &appsv1.DaemonSet{}
	if err := decodeStrict(doc, ds); err != nil {
		return nil, err
	}
	if ds.APIVersion != "apps/v1" {
		return nil, badInput("%s: DaemonSet %s has apiVersion %q; daemonset-guard checks apps/v1", doc.source, ds.Name, ds.APIVersion)
	}
	if ds.Namespace == "" {
		ds.Namespace = namespace
	}
	return ds, nil
}

// patchedOrWritten merges the mutation into the document as written, so
// that it gains what admission would add and none of the API's defaults.
func patchedOrWritten(res *offline.Result, doc document) ([]byte, error) {
	if res.MergePatch == nil {
		return doc.raw, nil
	}
	patched, err := jsonpatch.MergePatch(doc.raw, res.MergePatch)
	if err != nil {
		return nil, fmt.Errorf("%s: merging the mutation: %w", doc.source, err)
	}
	return patched, nil
}

// clusterClient connects to the cluster of a kubeconfig.
// cliConfig finds the cluster as kubectl does: the kubeconfig given, else
// $KUBECONFIG or ~/.kube/config (then the in-cluster configuration), at the
// context given, else the current one.
func cliConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	if kubeContext == "" {
		return restConfig(kubeconfig)
	}
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading context %s: %w", kubeContext, err)
	}
	return cfg, nil
}

// liveObjects returns where to find the stored version of a DaemonSet: in a
// snapshot file, in the cluster, or nowhere (every DaemonSet is then judged
// as a create). A DaemonSet that is not found is judged as a create.
func liveObjects(file string, client kubernetes.Interface, stdin io.Reader) (func(namespace, name string) (*appsv1.DaemonSet, error), error) {
	switch {
	case file != "":
		docs, err := readDocuments([]string{file}, stdin)
		if err != nil {
			return nil, err
		}
		stored := map[types.NamespacedName]*appsv1.DaemonSet{}
		for _, doc := range docs {
			if doc.kind != "DaemonSet" {
				return nil, badInput("%s: %s in --live-objects, where only DaemonSets belong", doc.source, doc.kind)
			}
			ds := &appsv1.DaemonSet{}
			if err := json.Unmarshal(doc.raw, ds); err != nil {
				return nil, badInput("%s: %w", doc.source, err)
			}
			stored[types.NamespacedName{Namespace: cmp.Or(ds.Namespace, metav1.NamespaceDefault), Name: ds.Name}] = ds
		}
		return func(namespace, name string) (*appsv1.DaemonSet, error) {
			return stored[types.NamespacedName{Namespace: namespace, Name: name}], nil
		}, nil
	case client != nil:
		return func(namespace, name string) (*appsv1.DaemonSet, error) {
			ds, err := client.AppsV1().DaemonSets(namespace).Get(context.Background(), name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				return nil, nil
			case err != nil:
				return nil, unreachableError{fmt.Errorf("reading DaemonSet %s/%s: %w", namespace, name, err)}
			}
			return ds, nil
		}, nil
	}
	return func(string, string) (*appsv1.DaemonSet, error) { return nil, nil }, nil
}

// loadNodes reads the nodes from a file or a cluster; nil means none given.
func loadNodes(file string, client kubernetes.Interface, stdin io.Reader) (*inventory.Inventory, error) {
	var nodes []*corev1.Node
	switch {
	case file != "":
		docs, err := readDocuments([]string{file}, stdin)
		if err != nil {
			return nil, err
		}
		for _, doc := range docs {
			if doc.kind != "Node" {
				return nil, badInput("%s: %s in --nodes, where only Nodes belong", doc.source, doc.kind)
			}
			n := &corev1.Node{}
			if err := json.Unmarshal(doc.raw, n); err != nil {
				return nil, badInput("%s: %w", doc.source, err)
			}
			nodes = append(nodes, n)
		}
	case client != nil:
		list, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return nil, unreachableError{fmt.Errorf("listing nodes: %w", err)}
		}
		return inventoryOf(list.Items), nil
	default:
		return nil, nil
	}
	return inventory.New(nodes...), nil
}

// clusterViews gives the evaluator the cluster's PriorityClasses, Namespaces
// and the workloads of namespace (every namespace when empty).
func clusterViews(ctx context.Context, client kubernetes.Interface, namespace string, ev *offline.Evaluator) error {
	classes, err := client.SchedulingV1().PriorityClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return unreachableError{fmt.Errorf("listing PriorityClasses: %w", err)}
	}
	spaces, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return unreachableError{fmt.Errorf("listing Namespaces: %w", err)}
	}
	workloads, err := workloadsOf(ctx, client, namespace)
	if err != nil {
		return unreachableError{err}
	}
	ev.PriorityClasses, ev.Namespaces, ev.Workloads = priorityclass.New(classes.Items...), namespaces.New(spaces.Items...), workloads
	return nil
}

// workloadsOf lists the pod controllers of namespace that selector-overlap
// compares: DaemonSets, Deployments, StatefulSets, and the ReplicaSets no
// Deployment owns (a Deployment's own are reported as the Deployment).
func workloadsOf(ctx context.Context, client kubernetes.Interface, namespace string) (rules.WorkloadsByNamespace, error) {
	out := rules.WorkloadsByNamespace{}
	add := func(kind string, meta metav1.ObjectMeta, selector *metav1.LabelSelector, template map[string]string) {
		if metav1.GetControllerOf(&meta) == nil {
			out[meta.Namespace] = append(out[meta.Namespace], rules.Workload{Kind: kind, Name: meta.Name, Selector: selector, TemplateLabels: template})
		}
	}
	apps := client.AppsV1()
	daemonSets, err := apps.DaemonSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing DaemonSets: %w", err)
	}
	for _, w := range daemonSets.Items {
		add("DaemonSet", w.ObjectMeta, w.Spec.Selector, w.Spec.Template.Labels)
	}
	deployments, err := apps.Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Deployments: %w", err)
	}
	for _, w := range deployments.Items {
		add("Deployment", w.ObjectMeta, w.Spec.Selector, w.Spec.Template.Labels)
	}
	statefulSets, err := apps.StatefulSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing StatefulSets: %w", err)
	}
	for _, w := range statefulSets.Items {
		add("StatefulSet", w.ObjectMeta, w.Spec.Selector, w.Spec.Template.Labels)
	}
	replicaSets, err := apps.ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing ReplicaSets: %w", err)
	}
	for _, w := range replicaSets.Items {
		add("ReplicaSet", w.ObjectMeta, w.Spec.Selector, w.Spec.Template.Labels)
	}
	return out, nil
}

func inventoryOf(items []corev1.Node) *inventory.Inventory {
	nodes := make([]*corev1.Node, len(items))
	for i := range items {
		nodes[i] = &items[i]
	}
	return inventory.New(nodes...)
}

func writePatched(path string, docs [][]byte, stdout io.Writer) error {
	var out strings.Builder
	for i, doc := range docs {
		y, err := yaml.JSONToYAML(doc)
		if err != nil {
			return err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	if path == "-" {
		_, err := io.WriteString(stdout, out.String())
		return err
	}
	return os.WriteFile(path, []byte(out.String()), 0o644)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// colours paint text on a terminal and leave it plain elsewhere.
type colours bool

func (c colours) paint(code, s string) string {
	if !c {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func writeCheckReport(w io.Writer, report CheckReport, format string, terminal bool) error {
	switch format {
	case "json":
		return writeJSON(w, report)
	case "yaml":
		return writeYAML(w, report)
	}
	c := colours(terminal)
	var b strings.Builder
	for _, skipped := range report.Skipped {
		fmt.Fprintf(&b, "%s\n", c.paint("2", "skipped "+skipped))
	}
	for _, r := range report.Results {
		writeResult(&b, c, r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeResult(b *strings.Builder, c colours, r CheckResult) {
	verdict := c.paint("32", r.Verdict)
	if r.Verdict != offline.Admitted {
		verdict = c.paint("31", r.Verdict)
	}
	if r.Error != "" {
		verdict += ": " + r.Error
	}
	source := r.Source
	if r.Operation == rules.Update {
		source += ", as an update of the live object"
	}
	fmt.Fprintf(b, "%s/%s (%s): %s\n", r.Namespace, r.Name, source, verdict)
	if len(r.Patch) > 0 {
		fmt.Fprintf(b, "  mutated by %s:\n", strings.Join(r.Mutations, ", "))
		for _, op := range r.Patch {
			value, _ := json.Marshal(op.Value)
			switch op.Op {
			case "add":
				fmt.Fprintf(b, "    %s %s: %s\n", c.paint("32", "+"), op.Path, value)
			case "replace":
				fmt.Fprintf(b, "    %s %s: %s\n", c.paint("33", "~"), op.Path, value)
			default:
				fmt.Fprintf(b, "    %s %s\n", c.paint("31", "-"), op.Path)
			}
		}
	}
	for _, f := range r.Findings {
		action := c.paint("33", "warn")
		if f.Action == policy.Deny {
			action = c.paint("31", "deny")
		}
		fmt.Fprintf(b, "  %s [%s] %s: %s\n", action, f.Rule, f.Field, f.Message)
	}
	for _, e := range r.RuleErrors {
		fmt.Fprintf(b, "  %s [%s] %s\n", c.paint("31", "error"), e.Rule, e.Message)
	}
	if r.Coverage != nil {
		fmt.Fprintf(b, "  nodes: would run on %s\n", r.Coverage)
	}
}
