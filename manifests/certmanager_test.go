package manifests_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	apiutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/webhook/registration"
)

// TestTheCertManagerVariantWorksWithRealCertManager installs the
// cert-manager variant, by the kustomize overlay and by the Helm chart (into
// another namespace), on an API server where cert-manager's own controllers
// and cainjector run (bin/cert-manager-controllers, built from cert-manager's
// module by make), with cert-manager's CRDs from that module: the
// certificates are issued, cainjector puts the issuing CA into both webhook
// configurations, the API server calls the webhook (run on this host as the
// Deployment runs it, on the Secret's files) through its Service trusting
// that CA, and a forced renewal gives a new serving certificate that the
// injected bundle verifies and the webhook serves without restart.
func TestTheCertManagerVariantWorksWithRealCertManager(t *testing.T) {
	controllers := filepath.Join(testenv.RepoRoot(), "bin", "cert-manager-controllers")
	if _, err := os.Stat(controllers); err != nil {
		t.Fatalf("%s is missing: run `make test`, which builds it from e2e/tools/certmanager: %v", controllers, err)
	}
	tool := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/cert-manager/cert-manager")
	tool.Dir = filepath.Join(testenv.RepoRoot(), "e2e", "tools", "certmanager")
	toolVersion, err := tool.Output()
	if err != nil {
		t.Fatal(err)
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(toolVersion, root) {
		t.Fatalf("e2e/tools/certmanager runs cert-manager %s, but the CRDs come from the root module's %s: require the same version in both", toolVersion, root)
	}
	crds := filepath.Join(moduleDir(t, "github.com/cert-manager/cert-manager"), "deploy", "crds")
	t.Run("by the kustomize overlay", func(t *testing.T) {
		c := newInstallCluster(t, crds)
		exited := runCertManager(t, controllers, c.kubeconfig)
		overlay := filepath.Join(testenv.RepoRoot(), "manifests", "overlays", "cert-manager")
		out, err := c.kubectl("", "apply", "-k", overlay)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "kubectl apply -k:\n%s", out)
		rendered, err := c.kubectl("", "kustomize", overlay)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		testCertManagerInstall(t, c, exited, rendered)
	})
	t.Run("by the Helm chart, which finds cert-manager's API", func(t *testing.T) {
		c := newInstallCluster(t, crds)
		c.namespace = "guard"
		exited := runCertManager(t, controllers, c.kubeconfig)
		out, err := helm(t, "", "install", "daemonset-guard", chartDir, "--kubeconfig", c.kubeconfig,
			"--namespace", c.namespace, "--create-namespace", "-f", variantValues("cert-manager"))
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "helm install:\n%s", out)
		rendered, err := helm(t, "", "get", "manifest", "daemonset-guard", "--kubeconfig", c.kubeconfig, "--namespace", c.namespace)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "helm get manifest:\n%s", rendered)
		testCertManagerInstall(t, c, exited, rendered)
	})
}

// testCertManagerInstall follows the certificates of the rendered
// manifests, installed in c, from issuance through a renewal.
func testCertManagerInstall(t *testing.T, c *installCluster, exited <-chan error, rendered string) {
	g := NewWithT(t)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(cmapi.AddToScheme(scheme)).To(Succeed())
	cl, err := client.New(c.env.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	ready := func(name string) func() error {
		return func() error {
			select {
			case err := <-exited:
				g.Expect(err).NotTo(HaveOccurred(), "cert-manager's controllers exited")
			default:
			}
			crt := &cmapi.Certificate{}
			if err := cl.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, crt); err != nil {
				return err
			}
			if !apiutil.CertificateHasCondition(crt, cmapi.CertificateCondition{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue}) {
				return fmt.Errorf("certificate %s is not Ready: %+v", name, crt.Status.Conditions)
			}
			return nil
		}
	}
	g.Eventually(ready("daemonset-guard-ca"), 60*time.Second, 250*time.Millisecond).Should(Succeed(), "the self-signed Issuer issues the CA")
	g.Eventually(ready("daemonset-guard-serving"), 60*time.Second, 250*time.Millisecond).Should(Succeed(), "the CA Issuer issues the serving certificate")
	caSecret, err := c.client.CoreV1().Secrets(c.namespace).Get(ctx, "daemonset-guard-ca", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	issuingCA := caSecret.Data[corev1.TLSCertKey]
	servingSecret, err := c.client.CoreV1().Secrets(c.namespace).Get(ctx, "daemonset-guard-tls", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(servingSecret.Data["ca.crt"]).To(Equal(issuingCA), "the serving Secret names the CA that issued it")

	// cainjector injects into the webhooks a configuration has: write the
	// shipped ones without a caBundle, as an administrator may, so that only
	// cainjector can fill it in before the webhook runs.
	mutating, validating, err := registration.Definition()
	g.Expect(err).NotTo(HaveOccurred())
	configs := c.client.AdmissionregistrationV1()
	liveMutating, err := configs.MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	liveMutating.Webhooks = mutating.Webhooks
	_, err = configs.MutatingWebhookConfigurations().Update(ctx, liveMutating, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	liveValidating, err := configs.ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	liveValidating.Webhooks = validating.Webhooks
	_, err = configs.ValidatingWebhookConfigurations().Update(ctx, liveValidating, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	bundles := func() [2][]byte {
		m, err := configs.MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		v, err := configs.ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return [2][]byte{m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle}
	}
	g.Eventually(bundles, 30*time.Second, 250*time.Millisecond).Should(Equal([2][]byte{issuingCA, issuingCA}),
		"cainjector injects the issuing CA into both configurations")

	serving := leafOf(t, servingSecret.Data[corev1.TLSCertKey])
	serviceName := "daemonset-guard." + c.namespace + ".svc"
	g.Expect(serving.DNSNames).To(ContainElements(serviceName, serviceName+".cluster.local"), "the serving certificate covers the Service's DNS names")
	verifies(t, serving, issuingCA, serviceName)

	// Play the kubelet: the Secret's files in the directory the Deployment
	// mounts it at, updated when the Secret is.
	certDir := t.TempDir()
	mountSecret(t, servingSecret, certDir)
	deployment, policyFile := deploymentAndPolicy(t, rendered)
	port := testenv.FreePort(t)
	c.routeServiceHere(t, port)
	runLikeTheDeployment(t, deployment, policyFile, certDir, port, testenv.FreePort(t), serviceAccountKubeconfig(t, c, "daemonset-guard"), c.namespace)
	webhookWarns := c.webhookWarns(t)
	g.Eventually(webhookWarns, 30*time.Second, 250*time.Millisecond).Should(Succeed(),
		"the API server calls the webhook through its Service, trusting the injected CA")
	g.Expect(bundles()).To(Equal([2][]byte{issuingCA, issuingCA}), "the webhook left cainjector's bundle alone")

	// What cmctl renew does: the Issuing condition, set by hand.
	crt := &cmapi.Certificate{}
	g.Expect(cl.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: "daemonset-guard-serving"}, crt)).To(Succeed())
	apiutil.SetCertificateCondition(crt, crt.Generation, cmapi.CertificateConditionIssuing, cmmeta.ConditionTrue, "ManuallyTriggered", "Certificate re-issuance manually triggered")
	g.Expect(cl.Status().Update(ctx, crt)).To(Succeed())
	var renewed *corev1.Secret
	g.Eventually(func() error {
		s, err := c.client.CoreV1().Secrets(c.namespace).Get(ctx, "daemonset-guard-tls", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if bytes.Equal(s.Data[corev1.TLSCertKey], servingSecret.Data[corev1.TLSCertKey]) {
			return errors.New("the serving certificate is not renewed yet")
		}
		renewed = s
		return nil
	}, 60*time.Second, 250*time.Millisecond).Should(Succeed(), "cert-manager reissues the serving certificate")
	g.Eventually(ready("daemonset-guard-serving"), 30*time.Second, 250*time.Millisecond).Should(Succeed())
	next := leafOf(t, renewed.Data[corev1.TLSCertKey])
	g.Expect(next.SerialNumber).NotTo(Equal(serving.SerialNumber))
	g.Expect(next.PublicKey).NotTo(Equal(serving.PublicKey), "rotationPolicy Always: a new key")
	verifies(t, next, bundles()[1], serviceName)

	mountSecret(t, renewed, certDir)
	g.Eventually(func() error { return servesCertificate(port, bundles()[1], serviceName, next) }, 30*time.Second, 250*time.Millisecond).
		Should(Succeed(), "the webhook serves the renewed certificate without restart")
	g.Expect(webhookWarns()).To(Succeed(), "the API server calls the webhook under the renewed certificate")
}

// runCertManager runs cert-manager's controllers and cainjector against the
// kubeconfig until the test ends, and returns a channel that says if they
// exit before.
func runCertManager(t *testing.T, binary, kubeconfig string) <-chan error {
	t.Helper()
	var logs bytes.Buffer
	cmd := exec.Command(binary, "--kubeconfig", kubeconfig)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		if err == nil {
			err = errors.New("exit status 0")
		}
		exited <- err
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("cert-manager controllers:\n%s", logs.String())
		}
	})
	return exited
}

// mountSecret writes a TLS Secret's keys into dir as the kubelet mounts
// them: each file replaced whole, by rename.
func mountSecret(t *testing.T, secret *corev1.Secret, dir string) {
	t.Helper()
	for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
		tmp := filepath.Join(dir, "."+key)
		if err := os.WriteFile(tmp, secret.Data[key], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, key)); err != nil {
			t.Fatal(err)
		}
	}
}

// leafOf decodes the first certificate of a PEM chain.
func leafOf(t *testing.T, chain []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(chain)
	if block == nil {
		t.Fatalf("no PEM certificate in %q", chain)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// verifies checks that bundle verifies cert as a server certificate for
// name, as the API server does when it calls the webhook.
func verifies(t *testing.T, cert *x509.Certificate, bundle []byte, name string) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("the bundle holds no certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the bundle does not verify the serving certificate for %s: %v", name, err)
	}
}

// servesCertificate connects to the webhook on this host as the API server
// would and checks that it presents want.
func servesCertificate(port int, bundle []byte, name string, want *x509.Certificate) error {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return err
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(want) {
		return fmt.Errorf("the webhook serves certificate %s, want %s", got.SerialNumber, want.SerialNumber)
	}
	return nil
}
