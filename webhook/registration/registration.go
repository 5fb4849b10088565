// Package registration writes daemonset-guard's webhooks into its two webhook
// configurations once the webhook is ready to answer, and keeps them there.
//
// The manifests ship both configurations without webhooks, and a
// configuration without webhooks intercepts nothing. So an install whose
// webhook never starts (cert-manager missing, a Secret in the wrong
// namespace) can never refuse a DaemonSet write: the fail-closed validating
// webhook comes into force only once a replica can answer it. Kyverno
// registers its webhooks the same way; here the webhook may only update its
// two named configurations, never create others.
package registration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	admissiondefaults "k8s.io/kubernetes/pkg/apis/admissionregistration/v1"

	"github.com/daemonset-guard/daemonset-guard/internal/namedwatch"
	"github.com/daemonset-guard/daemonset-guard/manifests"
)

// DefaultInterval is how often a registered webhook checks that its
// configurations still hold its webhooks.
const DefaultInterval = 30 * time.Second

// Registrar keeps the webhooks of manifests.Webhooks in the configurations
// named Name, pointed at Service and trusting CABundle.
type Registrar struct {
	Client kubernetes.Interface
	// Name is the name of both configurations.
	Name string
	// Service is the Service the API server calls the webhook through.
	Service types.NamespacedName
	// CABundle returns the CAs the API server must trust for the serving
	// certificate.
	CABundle func() ([]byte, error)
	// KeepCABundle leaves a caBundle that is already set alone, and sets
	// only an empty one: cert-manager's cainjector keeps it current, with a
	// CA being replaced beside the new one, which writing the current CA
	// alone would undo.
	KeepCABundle bool
	// Ready reports whether this replica can answer admission requests;
	// nothing is registered before it can.
	Ready func() error
	// Resync, when set, receives when CABundle's answer changes (a renewed
	// or recreated CA), so that the configurations follow within seconds.
	Resync <-chan struct{}
	// Interval defaults to DefaultInterval.
	Interval time.Duration
	Log      logr.Logger
}

// Start registers the webhooks once Ready and then keeps them registered,
// until ctx is done: it watches both configurations, so an emptied or
// changed one is repaired within seconds, and checks them every Interval
// besides. It implements controller-runtime's manager.Runnable.
func (r *Registrar) Start(ctx context.Context) error {
	interval := r.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	api := r.Client.AdmissionregistrationV1().RESTClient()
	mutatingChanged := namedwatch.Changes(ctx, api, "mutatingwebhookconfigurations", "", r.Name, &admissionregistrationv1.MutatingWebhookConfiguration{})
	validatingChanged := namedwatch.Changes(ctx, api, "validatingwebhookconfigurations", "", r.Name, &admissionregistrationv1.ValidatingWebhookConfiguration{})
	backoff := time.Second
	for {
		wait := interval
		if err := r.Ready(); err != nil {
			wait = time.Second
		} else if err := r.Sync(ctx); err != nil {
			r.Log.Error(err, "registering the webhooks; retrying", "in", backoff)
			wait, backoff = backoff, min(2*backoff, interval)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		case <-mutatingChanged:
		case <-validatingChanged:
		case <-r.Resync:
		}
	}
}

// Sync makes both configurations hold the webhooks.
func (r *Registrar) Sync(ctx context.Context) error {
	mutating, validating, err := Definition()
	if err != nil {
		return err
	}
	var caBundle []byte
	ca := func() ([]byte, error) {
		if caBundle == nil {
			b, err := r.CABundle()
			if err != nil {
				return nil, fmt.Errorf("reading the CA bundle: %w", err)
			}
			caBundle = b
		}
		return caBundle, nil
	}
	api := r.Client.AdmissionregistrationV1()
	if err := syncConfiguration(ctx, r, ca, api.MutatingWebhookConfigurations().Get, api.MutatingWebhookConfigurations().Update,
		mutating.Webhooks, func(c *admissionregistrationv1.MutatingWebhookConfiguration) *[]admissionregistrationv1.MutatingWebhook {
			return &c.Webhooks
		},
		func(w *admissionregistrationv1.MutatingWebhook) (string, *admissionregistrationv1.WebhookClientConfig) {
			return w.Name, &w.ClientConfig
		}, admissiondefaults.SetObjectDefaults_MutatingWebhookConfiguration); err != nil {
		return fmt.Errorf("MutatingWebhookConfiguration %s: %w", r.Name, err)
	}
	if err := syncConfiguration(ctx, r, ca, api.ValidatingWebhookConfigurations().Get, api.ValidatingWebhookConfigurations().Update,
		validating.Webhooks, func(c *admissionregistrationv1.ValidatingWebhookConfiguration) *[]admissionregistrationv1.ValidatingWebhook {
			return &c.Webhooks
		},
		func(w *admissionregistrationv1.ValidatingWebhook) (string, *admissionregistrationv1.WebhookClientConfig) {
			return w.Name, &w.ClientConfig
		}, admissiondefaults.SetObjectDefaults_ValidatingWebhookConfiguration); err != nil {
		return fmt.Errorf("ValidatingWebhookConfiguration %s: %w", r.Name, err)
	}
	return nil
}

// syncConfiguration is Sync for one configuration kind: it sets the live
// configuration's webhooks to the definition's, pointed at the Service and
// trusting the CA, and updates it when that changes anything.
func syncConfiguration[C any, W any](ctx context.Context, r *Registrar, ca func() ([]byte, error),
	get func(context.Context, string, metav1.GetOptions) (*C, error), update func(context.Context, *C, metav1.UpdateOptions) (*C, error),
	defined []W, webhooksOf func(*C) *[]W, clientConfigOf func(*W) (string, *admissionregistrationv1.WebhookClientConfig), setDefaults func(*C),
) error {
	live, err := get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("it does not exist; the manifests create it (empty), and the webhook fills it in: %w", err)
	}
	if err != nil {
		return err
	}
	liveBundles := map[string][]byte{}
	for i := range *webhooksOf(live) {
		name, cc := clientConfigOf(&(*webhooksOf(live))[i])
		liveBundles[name] = cc.CABundle
	}
	desired := new(C)
	*webhooksOf(desired) = make([]W, len(defined))
	copy(*webhooksOf(desired), defined)
	for i := range *webhooksOf(desired) {
		name, cc := clientConfigOf(&(*webhooksOf(desired))[i])
		if cc.Service == nil {
			return fmt.Errorf("webhook %s of the definition has no service to point at %s", name, r.Service)
		}
		service := *cc.Service
		service.Namespace, service.Name = r.Service.Namespace, r.Service.Name
		cc.Service = &service
		if kept := liveBundles[name]; r.KeepCABundle && len(kept) > 0 {
			cc.CABundle = kept
			continue
		}
		if cc.CABundle, err = ca(); err != nil {
			return err
		}
	}
	setDefaults(desired)
	if equality.Semantic.DeepEqual(*webhooksOf(live), *webhooksOf(desired)) {
		return nil
	}
	*webhooksOf(live) = *webhooksOf(desired)
	if _, err := update(ctx, live, metav1.UpdateOptions{FieldManager: "daemonset-guard"}); err != nil {
		return err
	}
	r.Log.Info("registered the webhooks", "configuration", r.Name, "service", r.Service.String())
	return nil
}

// Definition decodes manifests.Webhooks.
func Definition() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests.Webhooks), 4096)
	mutating, validating := &admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}
	for _, into := range []any{mutating, validating} {
		if err := dec.Decode(into); err != nil {
			return nil, nil, fmt.Errorf("decoding the embedded webhook definition: %w", err)
		}
	}
	var extra map[string]any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) || len(mutating.Webhooks) == 0 || len(validating.Webhooks) == 0 {
		return nil, nil, errors.New("the embedded webhook definition must hold one mutating and one validating configuration, with webhooks")
	}
	return mutating, validating, nil
}
