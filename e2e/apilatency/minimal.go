package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/certs"
	"github.com/daemonset-guard/daemonset-guard/internal/baseline"
	"github.com/daemonset-guard/daemonset-guard/webhook/registration"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// minimalWebhook is the baseline a webhook can hardly do less than: a
// controller-runtime webhook server with the baseline package's webhooks,
// its mutator setting the fields daemonset-guard's mutation sets. It runs as
// a process of its own (this program, as `apilatency minimal-webhook`),
// pinned to the webhook's CPUs as daemonset-guard is, and is registered with
// daemonset-guard's own webhook definition (rules, timeouts, failure
// policies, match conditions), for the namespaces labelled minimalLabel.
type minimalWebhook struct {
	// cpus, when set, pins the process as taskset -c does.
	cpus string
	// mutation is what the mutating webhook sets: daemonset-guard's.
	mutation mutation
}

// minimalName names the baseline's two webhook configurations.
const minimalName = "apilatency-minimal"

// start runs the baseline and registers it; the returned function
// deregisters and stops it.
func (m *minimalWebhook) start(ctx context.Context, client kubernetes.Interface) (stop func(context.Context) error, err error) {
	now := time.Now()
	ca, err := certs.NewCA("apilatency-minimal-ca", now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	serving, err := ca.Serving(nil, []string{"127.0.0.1"}, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "apilatency-minimal-")
	if err != nil {
		return nil, err
	}
	if err := serving.WriteFiles(dir); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	mu, err := json.Marshal(m.mutation)
	if err != nil {
		return nil, err
	}
	args := []string{self, "minimal-webhook", "--cert-dir", dir, "--port", fmt.Sprint(port), "--mutation", string(mu)}
	if m.cpus != "" {
		args = append([]string{"taskset", "-c", m.cpus}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the minimal webhook: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- cmd.Wait() }()

	// daemonset-guard's own webhooks (manifests/webhooks.yaml), pointed at
	// the baseline and at the namespaces labelled for it.
	mutating, validating, err := registration.Definition()
	if err != nil {
		return nil, err
	}
	mutating.Name, validating.Name = minimalName, minimalName
	retarget := func(name *string, cc *admissionregistrationv1.WebhookClientConfig, selector **metav1.LabelSelector, path string) {
		*name = "apilatency." + *name
		*cc = admissionregistrationv1.WebhookClientConfig{URL: ptr.To(fmt.Sprintf("https://127.0.0.1:%d%s", port, path)), CABundle: ca.CertPEM}
		*selector = &metav1.LabelSelector{MatchLabels: map[string]string{minimalLabel: "true"}}
	}
	for i := range mutating.Webhooks {
		w := &mutating.Webhooks[i]
		retarget(&w.Name, &w.ClientConfig, &w.NamespaceSelector, "/mutate")
	}
	for i := range validating.Webhooks {
		w := &validating.Webhooks[i]
		retarget(&w.Name, &w.ClientConfig, &w.NamespaceSelector, "/validate")
	}
	api := client.AdmissionregistrationV1()
	stop = func(ctx context.Context) error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		errs := []error{<-served, os.RemoveAll(dir)}
		for _, err := range []error{
			api.MutatingWebhookConfigurations().Delete(ctx, minimalName, metav1.DeleteOptions{}),
			api.ValidatingWebhookConfigurations().Delete(ctx, minimalName, metav1.DeleteOptions{}),
		} {
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if _, err := api.MutatingWebhookConfigurations().Create(ctx, mutating, metav1.CreateOptions{}); err != nil {
		return stop, fmt.Errorf("registering the minimal webhook: %w", err)
	}
	if _, err := api.ValidatingWebhookConfigurations().Create(ctx, validating, metav1.CreateOptions{}); err != nil {
		return stop, fmt.Errorf("registering the minimal webhook: %w", err)
	}
	return stop, nil
}

// serveMinimalWebhook is `apilatency minimal-webhook`: it serves the
// baseline's webhooks until SIGTERM.
func serveMinimalWebhook(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apilatency minimal-webhook", flag.ContinueOnError)
	certDir := fs.String("cert-dir", "", "directory of tls.crt and tls.key")
	port := fs.Int("port", 0, "port to serve on 127.0.0.1")
	mutationJSON := fs.String("mutation", "{}", "the mutation to set, as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m := &minimalWebhook{}
	if err := json.Unmarshal([]byte(*mutationJSON), &m.mutation); err != nil {
		return fmt.Errorf("--mutation: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	server := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir})
	server.Register("/mutate", &admission.Webhook{Handler: baseline.Mutator(scheme, m.mutate)})
	server.Register("/validate", baseline.Validator(scheme))
	return server.Start(ctx)
}

// mutate sets daemonset-guard's mutation on ds.
func (m *minimalWebhook) mutate(ds *appsv1.DaemonSet) {
	mu := m.mutation
	if ds.Annotations == nil {
		ds.Annotations = map[string]string{}
	}
	ds.Annotations[rules.MutatedAnnotation] = mu.Rules
	ds.Spec.Template.Spec.Tolerations = mu.Tolerations
	ds.Spec.MinReadySeconds = mu.MinReadySeconds
	if ds.Spec.UpdateStrategy.RollingUpdate == nil {
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
	}
	ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = mu.MaxUnavailable
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
