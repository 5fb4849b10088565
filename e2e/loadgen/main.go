// Command loadgen sends admission reviews to a running daemonset-guard the
// way the API server does (HTTPS, HTTP/1.1, keep-alive connections), a mix of
// CREATE and UPDATE of a realistic DaemonSet, and reports throughput, latency
// percentiles and the share of requests allowed at each number of
// connections. With --policy-file the DaemonSets are first mutated as the
// mutating webhook would under that policy, which is what the API server sends
// the validating webhook.
//
//	loadgen --url https://127.0.0.1:19443/validate-apps-v1-daemonset --ca .cluster/certs/ca.crt \
//		[--policy-file .cluster/policy.yaml] [--rows bench-rows.md --label "validate, 5,000 nodes"]
//
// With --rate it soaks instead: a steady rate for --duration, reporting each
// --interval's latencies beside the webhook's memory and goroutines, and
// failing on errors or on growth that does not level off (make soak).
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/daemonset-guard/daemonset-guard/e2e/internal/bench"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	url := fs.String("url", "", "webhook URL, e.g. https://127.0.0.1:19443/validate-apps-v1-daemonset")
	caFile := fs.String("ca", "", "CA certificate of the webhook's serving certificate")
	levels := fs.String("connections", "1,8,64", "comma-separated numbers of concurrent keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "how long to send at each level")
	policyFile := fs.String("policy-file", "", "mutate the DaemonSets under this policy first, as the API server does before validation")
	rowsFile := fs.String("rows", "", "append the results as markdown table rows to this file")
	label := fs.String("label", "", "what the rows measure, e.g. \"validate, 5,000 nodes\"")
	rate := fs.Float64("rate", 0, "soak: send this many requests per second for --duration through --connections connections, instead of as many as possible")
	interval := fs.Duration("interval", 30*time.Second, "soak: how often to report latencies and sample --metrics-url")
	metricsURL := fs.String("metrics-url", "http://127.0.0.1:18080/metrics", "soak: the webhook's metrics endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *caFile == "" {
		return errors.New("--url and --ca are required")
	}
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", *caFile)
	}
	var pol *policy.Policy
	if *policyFile != "" {
		if pol, err = policy.Load(*policyFile, rules.Builtin()); err != nil {
			return err
		}
	}
	bodies, err := reviews(pol)
	if err != nil {
		return err
	}
	if *rate > 0 {
		n, err := strconv.Atoi(*levels)
		if err != nil || n < 1 {
			return fmt.Errorf("a soak takes one number of --connections, not %q", *levels)
		}
		return soak(out, soakConfig{url: *url, roots: roots, bodies: bodies, connections: n, rate: *rate,
			duration: *duration, interval: *interval, metricsURL: *metricsURL})
	}
	var rows []bench.Row
	fmt.Fprintf(out, "%-11s %10s %9s %9s %9s %8s %7s\n", "connections", "req/s", "p50", "p90", "p99", "allowed", "errors")
	for _, field := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			return fmt.Errorf("bad --connections entry %q", field)
		}
		r := load(*url, roots, bodies, n, *duration)
		allowed := fmt.Sprintf("%.0f%%", 100*float64(r.allowed)/float64(max(1, len(r.latencies))))
		fmt.Fprintf(out, "%-11d %10.0f %9s %9s %9s %8s %7d\n", n, r.rate, r.percentile(50), r.percentile(90), r.percentile(99), allowed, r.errors)
		rows = append(rows, bench.Row{
			Measurement: fmt.Sprintf("HTTPS load, %s, %d connections", *label, n),
			Value:       fmt.Sprintf("%.0f req/s, p50 %s, p99 %s, %s allowed, %d errors", r.rate, r.percentile(50), r.percentile(99), allowed, r.errors),
		})
	}
	if *rowsFile == "" {
		return nil
	}
	return bench.AppendRows(*rowsFile, rows)
}

// reviews returns a CREATE and an UPDATE review of a realistic DaemonSet,
// mutated under pol when it is not nil.
func reviews(pol *policy.Policy) ([][]byte, error) {
	ds := fixture.Realistic(func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	})
	updated := ds.DeepCopy()
	updated.Spec.Template.Spec.Containers[0].Image = "fluent/fluent-bit:3.3"
	if pol != nil {
		rules.Builtin().Mutate(&rules.Input{Operation: rules.Create, Object: ds, Policy: pol})
		rules.Builtin().Mutate(&rules.Input{Operation: rules.Update, Object: updated, OldObject: ds, Policy: pol})
	}
	var out [][]byte
	for i, pair := range [][2]*appsv1.DaemonSet{{ds, nil}, {updated, ds}} {
		req := &admissionv1.AdmissionRequest{
			UID:       types.UID(fmt.Sprintf("loadgen-%d", i)),
			Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"},
			Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"},
			Name:      ds.Name,
			Namespace: ds.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Object: pair[0]},
		}
		if pair[1] != nil {
			req.Operation = admissionv1.Update
			req.OldObject = runtime.RawExtension{Object: pair[1]}
		}
		body, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Request: req})
		if err != nil {
			return nil, err
		}
		out = append(out, body)
	}
	return out, nil
}

type result struct {
	rate      float64
	latencies []time.Duration
	allowed   int
	errors    int
}

func (r *result) add(took time.Duration, allowed bool, err error) {
	switch {
	case err != nil:
		r.errors++
	case allowed:
		r.allowed++
		fallthrough
	default:
		r.latencies = append(r.latencies, took)
	}
}

func (r *result) merge(other result) {
	r.latencies = append(r.latencies, other.latencies...)
	r.allowed += other.allowed
	r.errors += other.errors
}

// percentile formats a percentile of the latencies, which must be sorted.
func (r result) percentile(p float64) string {
	if len(r.latencies) == 0 {
		return "-"
	}
	return bench.Percentile(r.latencies, p).Round(10 * time.Microsecond).String()
}

// caller is one keep-alive connection to the webhook, as the API server
// holds them.
type caller struct {
	url    string
	client *http.Client
	answer bytes.Buffer
}

func newCaller(url string, roots *x509.CertPool) *caller {
	return &caller{url: url, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
	}}}
}

// send posts one review and reports how long the answer took and whether it
// allowed the object.
func (c *caller) send(body []byte) (took time.Duration, allowed bool, err error) {
	start := time.Now()
	resp, err := c.client.Post(c.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	c.answer.Reset()
	_, err = c.answer.ReadFrom(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), bytes.Contains(c.answer.Bytes(), []byte(`"allowed":true`)), err
}

// load keeps n connections busy for d.
func load(url string, roots *x509.CertPool, bodies [][]byte, n int, d time.Duration) result {
	var mu sync.Mutex
	var all result
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := newCaller(url, roots)
			var mine result
			for j := i; time.Now().Before(deadline); j++ {
				mine.add(c.send(bodies[j%len(bodies)]))
			}
			mu.Lock()
			all.merge(mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all.latencies)
	all.rate = float64(len(all.latencies)) / d.Seconds()
	return all
}
