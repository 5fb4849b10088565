package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/daemonset-guard/daemonset-guard/certs"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

const (
	namespace = "daemonset-guard-system"
	caLife    = 30 * time.Hour
	servLife  = 3 * time.Hour
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// logLines collects log lines, so a test can see what an operator would.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, args)
}
func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type fixtureEnv struct {
	client kubernetes.Interface
	clock  *clock
	logs   *logLines
}

// replica returns a SelfManaged as one webhook replica runs it.
func (e *fixtureEnv) replica(t *testing.T) *certs.SelfManaged {
	return &certs.SelfManaged{
		Client:          e.client,
		Secret:          types.NamespacedName{Namespace: namespace, Name: "daemonset-guard-tls"},
		DNSNames:        []string{"localhost"},
		Dir:             t.TempDir(),
		CAValidity:      caLife,
		ServingValidity: servLife,
		Now:             e.clock.Now,
		Log:             funcr.New(e.logs.add, funcr.Options{}),
	}
}

func (e *fixtureEnv) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	s, err := e.client.CoreV1().Secrets(namespace).Get(context.Background(), "daemonset-guard-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// caBundle is the replica's CA bundle, which the registrar writes into the
// webhook configurations.
func caBundle(t *testing.T, m *certs.SelfManaged) []byte {
	t.Helper()
	b, err := m.CABundle()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trust writes the CA bundle into the webhook configurations that envtest
// installed, as the registrar would.
func (e *fixtureEnv) trust(t *testing.T, bundle []byte) {
	t.Helper()
	ctx := context.Background()
	api := e.client.AdmissionregistrationV1()
	m, err := api.MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Webhooks[0].ClientConfig.CABundle = bundle
	if _, err := api.MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := api.ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v.Webhooks[0].ClientConfig.CABundle = bundle
	if _, err := api.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatalf("the files in %s are not a key pair: %v", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// verifies reports whether the CA bundle makes a client trust cert for localhost.
func verifies(bundle []byte, cert *x509.Certificate, at time.Time) error {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost", CurrentTime: at})
	return err
}

func TestSelfManagedCertificates(t *testing.T) {
	cfg, wio := testenv.Start(t, "localhost")
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e := &fixtureEnv{client: client, clock: &clock{now: start}, logs: &logLines{}}
	first := e.replica(t)

	t.Run("creates the CA and serving certificate, writes the files and offers the CA bundle", func(t *testing.T) {
		g := NewWithT(t)
		_, err := first.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		s := e.secret(t)
		g.Expect(s.Data).To(HaveKey("ca.crt"))
		g.Expect(s.Data).To(HaveKey("ca.key"))
		g.Expect(readCert(t, first.Dir).Raw).To(Equal(mustDecode(t, s.Data["tls.crt"]).Raw), "the files hold the Secret's certificate")
		bundle := caBundle(t, first)
		g.Expect(bundle).To(Equal(s.Data["ca.crt"]))
		g.Expect(verifies(bundle, readCert(t, first.Dir), start)).To(Succeed())
		// An API server whose clock trails this replica's by minutes still
		// accepts the certificate issued a moment ago.
		g.Expect(verifies(bundle, readCert(t, first.Dir), start.Add(-4*time.Minute))).To(Succeed(), "the certificates are backdated for clock skew")
	})

	t.Run("the API server calls the webhook trusting the CA bundle", func(t *testing.T) {
		g := NewWithT(t)
		e.trust(t, caBundle(t, first))
		stop := serveAllowAll(t, wio, first.Dir)
		defer stop()
		ds := fixture.DaemonSet("probe")
		ds.Namespace = "default"
		// The validating webhook fails closed: the create succeeds only if
		// the API server trusted the served certificate.
		g.Eventually(func() error {
			_, err := client.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	})

	t.Run("a second replica reuses the valid Secret and writes nothing", func(t *testing.T) {
		g := NewWithT(t)
		before := e.secret(t).ResourceVersion
		second := e.replica(t)
		_, err := second.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.secret(t).ResourceVersion).To(Equal(before))
		g.Expect(readCert(t, second.Dir).Raw).To(Equal(readCert(t, first.Dir).Raw), "both replicas serve the same certificate")
	})

	t.Run("renews the serving certificate at two thirds of its life, keeping the CA", func(t *testing.T) {
		g := NewWithT(t)
		old := readCert(t, first.Dir)
		oldCA := e.secret(t).Data["ca.crt"]
		e.clock.Set(old.NotBefore.Add(servLife*2/3 - time.Minute))
		next, err := first.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(readCert(t, first.Dir).Raw).To(Equal(old.Raw), "not yet due")
		g.Expect(next).To(BeTemporally("~", old.NotBefore.Add(servLife*2/3), time.Second), "the next sync is at the renewal time")

		e.clock.Set(old.NotBefore.Add(servLife*2/3 + time.Minute))
		_, err = first.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		renewed := readCert(t, first.Dir)
		g.Expect(renewed.SerialNumber).NotTo(Equal(old.SerialNumber))
		g.Expect(e.secret(t).Data["ca.crt"]).To(Equal(oldCA))
		g.Expect(verifies(caBundle(t, first), renewed, e.clock.Now())).To(Succeed())
	})

	t.Run("rotates the CA well before it expires and trusts both CAs meanwhile", func(t *testing.T) {
		g := NewWithT(t)
		oldServing := readCert(t, first.Dir)
		oldCA := e.secret(t).Data["ca.crt"]
		e.clock.Set(start.Add(caLife*2/3 + time.Minute))
		_, err := first.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		s := e.secret(t)
		g.Expect(s.Data["ca.crt"]).NotTo(Equal(oldCA))
		g.Expect(s.Data["ca-previous.crt"]).To(Equal(oldCA))
		bundle := caBundle(t, first)
		g.Expect(bundle).To(Equal(append(append([]byte{}, s.Data["ca.crt"]...), oldCA...)))
		g.Expect(verifies(bundle, readCert(t, first.Dir), e.clock.Now())).To(Succeed(), "the new certificate is trusted")
		g.Expect(verifies(bundle, oldServing, oldServing.NotBefore.Add(time.Minute))).To(Succeed(), "a replica still serving the old one is trusted")
	})

	t.Run("regenerates a Secret that holds garbage and says so in the log", func(t *testing.T) {
		g := NewWithT(t)
		s := e.secret(t)
		// A PEM block of the right type around bytes that are no key.
		garbageKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")})
		s.Data = map[string][]byte{"ca.crt": []byte("not a certificate"), "ca.key": garbageKey, "tls.crt": {0xff}}
		_, err := client.CoreV1().Secrets(namespace).Update(ctx, s, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		_, err = first.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.logs.String()).To(ContainSubstring("the CA in the Secret is unusable; issuing a new one"))
		g.Expect(verifies(caBundle(t, first), readCert(t, first.Dir), e.clock.Now())).To(Succeed())
	})

	t.Run("recreates a deleted Secret, keeps trusting the CA it served with, and says the bundle changed", func(t *testing.T) {
		g := NewWithT(t)
		served := readCert(t, first.Dir)
		lostCA := e.secret(t).Data["ca.crt"]
		for len(first.BundleChanged()) > 0 {
			<-first.BundleChanged()
		}
		g.Expect(client.CoreV1().Secrets(namespace).Delete(ctx, "daemonset-guard-tls", metav1.DeleteOptions{})).To(Succeed())
		_, err := first.Sync(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		s := e.secret(t)
		g.Expect(s.Data["ca.crt"]).NotTo(Equal(lostCA))
		g.Expect(s.Data["ca-previous.crt"]).To(Equal(lostCA))
		bundle := caBundle(t, first)
		g.Expect(verifies(bundle, readCert(t, first.Dir), e.clock.Now())).To(Succeed(), "the new certificate is trusted")
		g.Expect(verifies(bundle, served, e.clock.Now())).To(Succeed(), "a replica still serving the lost CA's certificate is trusted")
		g.Expect(first.BundleChanged()).To(Receive(), "the registrar is told at once")
	})

	t.Run("replicas racing from an empty Secret agree on one CA", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(client.CoreV1().Secrets(namespace).Delete(ctx, "daemonset-guard-tls", metav1.DeleteOptions{})).To(Succeed())
		replicas := []*certs.SelfManaged{e.replica(t), e.replica(t), e.replica(t)}
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for i, r := range replicas {
			wg.Go(func() { _, errs[i] = r.Sync(ctx) })
		}
		wg.Wait()
		g.Expect(errs).To(HaveEach(BeNil()))
		served := readCert(t, replicas[0].Dir)
		for _, r := range replicas[1:] {
			g.Expect(readCert(t, r.Dir).Raw).To(Equal(served.Raw), "every replica serves the winner's certificate")
		}
		g.Expect(served.Raw).To(Equal(mustDecode(t, e.secret(t).Data["tls.crt"]).Raw))
		for _, r := range replicas {
			g.Expect(verifies(caBundle(t, r), served, e.clock.Now())).To(Succeed(), "every replica offers the winner's CA")
		}
	})
}

func mustDecode(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("not a certificate: %v", err)
	}
	return c
}

// serveAllowAll serves, on the address the installed webhook configurations
// call, an admission webhook that allows everything, with the certificate
// in dir.
func serveAllowAll(t *testing.T, wio envtest.WebhookInstallOptions, dir string) (stop func()) {
	t.Helper()
	server := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: dir})
	allow := &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })}
	server.Register("/mutate-apps-v1-daemonset", allow)
	server.Register("/validate-apps-v1-daemonset", allow)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- server.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	}
}
