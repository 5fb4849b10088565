package webhook_test

import (
	"context"
	"crypto/tls"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/daemonset-guard/daemonset-guard/certs"
	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
)

// TestCertificateRotationThroughTheAPIServerFailsNoRequest renews the
// serving certificate five times, as cert-manager does (same CA, new key and
// certificate written into the mounted directory), while clients create
// DaemonSets through the real API server, which calls both webhooks. Every
// create must succeed, and the webhook must really serve each new
// certificate.
func TestCertificateRotationThroughTheAPIServerFailsNoRequest(t *testing.T) {
	wh := testenv.StartWebhook(t, "policy/testdata/example.yaml")
	ctx := context.Background()
	g := NewWithT(t)

	// The test's own CA, so that it can issue renewals: the API server
	// trusts it once the webhook configurations carry it.
	ca, err := certs.NewCA("rotation-test-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	renew := func() *certs.KeyPair {
		serving, err := ca.Serving([]string{"localhost"}, []string{"127.0.0.1"}, time.Now(), time.Hour)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(serving.WriteFiles(wh.CertDir())).To(Succeed())
		return serving
	}
	served := func() string {
		conn, err := tls.Dial("tcp", wh.Address(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	current := renew()
	g.Eventually(served, 30*time.Second, 100*time.Millisecond).Should(Equal(current.Cert.SerialNumber.String()))
	mutating, err := wh.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].ClientConfig.CABundle = ca.CertPEM
	}
	_, err = wh.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mutating, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	validating, err := wh.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for i := range validating.Webhooks {
		validating.Webhooks[i].ClientConfig.CABundle = ca.CertPEM
	}
	_, err = wh.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, validating, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	testenv.CreateReadyNodes(t, wh.Client, fixture.Node("ssd-1", []string{"disktype", "ssd"}))
	_, err = wh.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rotation"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	dsClient := wh.Client.AppsV1().DaemonSets("rotation")
	// The API server uses the new caBundle and the webhook knows the node.
	g.Eventually(func() error {
		_, err := dsClient.Create(ctx, fixture.Written("probe", inNamespace("rotation")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}, 30*time.Second, 100*time.Millisecond).Should(Succeed())

	var created atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := "ds-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if _, err := dsClient.Create(ctx, fixture.Written(name, inNamespace("rotation")), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				created.Add(1)
			}
		})
	}
	for range 5 {
		before := created.Load()
		current = renew()
		g.Eventually(served, 30*time.Second, 50*time.Millisecond).Should(Equal(current.Cert.SerialNumber.String()), "the renewed certificate is served")
		g.Eventually(created.Load, 30*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", before+20), "creates go on with the renewed certificate")
	}
	close(stop)
	workers.Wait()
	g.Expect(failures).To(BeEmpty(), "no request failed during the rotations")
	t.Logf("%d creates through the API server across 5 certificate renewals, none failed", created.Load())
}
