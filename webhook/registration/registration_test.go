package registration_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/registration"
)

func TestRegistrarFillsInTheShippedConfigurations(t *testing.T) {
	env := testenv.StartEnvironment(t, &envtest.Environment{})
	client := kubernetes.NewForConfigOrDie(env.Config)
	ctx := context.Background()
	api := client.AdmissionregistrationV1()
	g := NewWithT(t)
	service := types.NamespacedName{Namespace: "guard", Name: "guard-svc"}
	registrar := func(keep bool, ca string) *registration.Registrar {
		return &registration.Registrar{Client: client, Name: "daemonset-guard", Service: service, KeepCABundle: keep,
			CABundle: func() ([]byte, error) { return []byte(ca), nil }, Ready: func() error { return nil }, Log: logr.Discard()}
	}
	validating := func() *admissionregistrationv1.ValidatingWebhookConfiguration {
		v, err := api.ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}

	t.Run("says the configurations must exist rather than creating them", func(t *testing.T) {
		err := registrar(false, "ca").Sync(ctx)
		NewWithT(t).Expect(err).To(MatchError(ContainSubstring("MutatingWebhookConfiguration daemonset-guard: it does not exist; the manifests create it (empty)")))
	})

	_, err := api.MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "daemonset-guard"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = api.ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "daemonset-guard", Annotations: map[string]string{"cert-manager.io/inject-ca-from": "guard/serving"}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	t.Run("writes the defined webhooks, pointed at the Service and trusting the CA, and keeps the annotations", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(registrar(true, "first-ca").Sync(ctx)).To(Succeed())
		v := validating()
		g.Expect(v.Webhooks).To(HaveLen(1))
		g.Expect(v.Webhooks[0].Name).To(Equal("validate.daemonset-guard.io"))
		g.Expect(*v.Webhooks[0].ClientConfig.Service).To(HaveField("Namespace", "guard"))
		g.Expect(*v.Webhooks[0].ClientConfig.Service).To(HaveField("Name", "guard-svc"))
		g.Expect(string(v.Webhooks[0].ClientConfig.CABundle)).To(Equal("first-ca"))
		g.Expect(v.Annotations).To(HaveKey("cert-manager.io/inject-ca-from"))
		m, err := api.MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(m.Webhooks).To(HaveLen(1))
		g.Expect(*m.Webhooks[0].FailurePolicy).To(Equal(admissionregistrationv1.Ignore))
	})

	t.Run("changes nothing when the configurations already hold the webhooks", func(t *testing.T) {
		g := NewWithT(t)
		before := validating().ResourceVersion
		g.Expect(registrar(true, "first-ca").Sync(ctx)).To(Succeed())
		g.Expect(validating().ResourceVersion).To(Equal(before))
	})

	t.Run("leaves alone a caBundle that cainjector keeps, when asked to", func(t *testing.T) {
		g := NewWithT(t)
		v := validating()
		v.Webhooks[0].ClientConfig.CABundle = []byte("new-ca+old-ca")
		_, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{FieldManager: "cainjector"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(registrar(true, "new-ca").Sync(ctx)).To(Succeed())
		g.Expect(string(validating().Webhooks[0].ClientConfig.CABundle)).To(Equal("new-ca+old-ca"))
	})

	t.Run("writes its own CA bundle when it is the CA's keeper", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(registrar(false, "self-managed-ca").Sync(ctx)).To(Succeed())
		g.Expect(string(validating().Webhooks[0].ClientConfig.CABundle)).To(Equal("self-managed-ca"))
	})

	t.Run("puts back webhooks that someone removed", func(t *testing.T) {
		g := NewWithT(t)
		v := validating()
		v.Webhooks = nil
		_, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(registrar(false, "self-managed-ca").Sync(ctx)).To(Succeed())
		g.Expect(validating().Webhooks).To(HaveLen(1))
	})

	t.Run("registers nothing until the replica is ready, then registers", func(t *testing.T) {
		g := NewWithT(t)
		v := validating()
		v.Webhooks = nil
		_, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		var ready atomic.Bool
		r := registrar(false, "ca")
		r.Interval = 100 * time.Millisecond
		r.Ready = func() error {
			if !ready.Load() {
				return errors.New("the node inventory has not synced yet")
			}
			return nil
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- r.Start(runCtx) }()
		defer func() { stop(); g.Expect(<-done).To(Succeed()) }()
		g.Consistently(func() int { return len(validating().Webhooks) }, 1500*time.Millisecond, 100*time.Millisecond).Should(BeZero(), "not ready: nothing registered")
		ready.Store(true)
		g.Eventually(func() int { return len(validating().Webhooks) }, 10*time.Second, 100*time.Millisecond).Should(Equal(1), "ready: registered")
	})

	t.Run("repairs an emptied caBundle within seconds, long before its next check", func(t *testing.T) {
		g := NewWithT(t)
		r := registrar(false, "the-ca")
		r.Interval = time.Hour
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- r.Start(runCtx) }()
		defer func() { stop(); g.Expect(<-done).To(Succeed()) }()
		bundle := func() string {
			if v := validating(); len(v.Webhooks) == 1 {
				return string(v.Webhooks[0].ClientConfig.CABundle)
			}
			return ""
		}
		g.Eventually(bundle, 10*time.Second, 100*time.Millisecond).Should(Equal("the-ca"), "registered at start")
		v := validating()
		v.Webhooks[0].ClientConfig.CABundle = nil
		_, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(bundle, 10*time.Second, 100*time.Millisecond).Should(Equal("the-ca"), "the watch sees the change and repairs it")
	})

	t.Run("does not register without a CA to trust", func(t *testing.T) {
		g := NewWithT(t)
		v := validating()
		v.Webhooks = nil
		_, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		r := registrar(true, "")
		r.CABundle = func() ([]byte, error) { return nil, errors.New("ca.crt is missing") }
		g.Expect(r.Sync(ctx)).To(MatchError(ContainSubstring("ca.crt is missing")))
		g.Expect(validating().Webhooks).To(BeEmpty())
	})
}
