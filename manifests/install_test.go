package manifests_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	resourcehelper "k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/internal/fixture"
	"github.com/daemonset-guard/daemonset-guard/internal/testenv"
	"github.com/daemonset-guard/daemonset-guard/internal/warnings"
)

const systemNamespace = "daemonset-guard-system"

// installCluster is a fresh control plane with a kubectl that administers it
// and a client that records the API server's warnings.
type installCluster struct {
	// namespace is the webhook's.
	namespace  string
	env        *envtest.Environment
	kubectl    func(stdin string, args ...string) (string, error)
	kubeconfig string
	client     kubernetes.Interface
	warnings   *warnings.Recorder
}

// newInstallCluster starts a control plane that reaches Services through
// their EndpointSlices, as the webhook on the host needs, with the CRDs of
// the given directories installed.
func newInstallCluster(t *testing.T, crdDirs ...string) *installCluster {
	t.Helper()
	env := &envtest.Environment{CRDDirectoryPaths: crdDirs, ErrorIfCRDPathMissing: true}
	env.ControlPlane.GetAPIServer().Configure().Set("enable-aggregator-routing", "true")
	testenv.StartEnvironment(t, env)
	w := &warnings.Recorder{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	kubectl, kubeconfig := adminKubectl(t, env)
	return &installCluster{namespace: systemNamespace, env: env, kubectl: kubectl, kubeconfig: kubeconfig, client: kubernetes.NewForConfigOrDie(cfg), warnings: w}
}

// createDaemonSet creates a log collector in namespace apps.
func (c *installCluster) createDaemonSet(t *testing.T, name string, dryRun bool) error {
	t.Helper()
	ctx := context.Background()
	if _, err := c.client.CoreV1().Namespaces().Get(ctx, "apps", metav1.GetOptions{}); err != nil {
		if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ds := fixture.Written(name)
	ds.Namespace = "apps"
	opts := metav1.CreateOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err := c.client.AppsV1().DaemonSets("apps").Create(ctx, ds, opts)
	return err
}

// webhookWarns returns a check that a dry-run DaemonSet create gets the
// webhook's targets-nodes warning: that the API server calls the webhook.
func (c *installCluster) webhookWarns(t *testing.T) func() error {
	return func() error {
		c.warnings.Take()
		if err := c.createDaemonSet(t, "probe", true); err != nil {
			return err
		}
		if w := c.warnings.Take(); !strings.Contains(strings.Join(w, "\n"), "[targets-nodes]") {
			return fmt.Errorf("no warning of the webhook's: %q", w)
		}
		return nil
	}
}

// webhooksRegistered returns how many webhooks the two configurations hold.
func (c *installCluster) webhooksRegistered(t *testing.T) (mutating, validating int) {
	t.Helper()
	ctx := context.Background()
	m, err := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Webhooks), len(v.Webhooks)
}

// TestTheCertManagerOverlayWithoutCertManagerBlocksNothing installs the
// cert-manager variant on a cluster that has no cert-manager, as a new user
// might: the chart and make deploy refuse, creating nothing; kubectl fails on
// the cert-manager kinds after creating the rest, and DaemonSet writes must
// still work, since the configurations it created hold no webhook.
func TestTheCertManagerOverlayWithoutCertManagerBlocksNothing(t *testing.T) {
	c := newInstallCluster(t)
	g := NewWithT(t)

	helmOut, err := helm(t, "", "install", "daemonset-guard", chartDir, "--kubeconfig", c.kubeconfig,
		"--namespace", systemNamespace, "--create-namespace", "-f", variantValues("cert-manager"))
	g.Expect(err).To(HaveOccurred(), "helm install refuses the cert-manager variant without cert-manager:\n%s", helmOut)
	g.Expect(helmOut).To(ContainSubstring("this cluster does not serve the cert-manager.io/v1 API"))
	g.Expect(helmOut).To(ContainSubstring("--set certificates.mode=self-managed"))
	_, err = c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), "daemonset-guard", metav1.GetOptions{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "helm install created nothing: %v", err)

	deploy := exec.Command("make", "--no-print-directory", "-C", testenv.RepoRoot(), "deploy", "KUBECONFIG="+c.kubeconfig)
	deployOut, err := deploy.CombinedOutput()
	g.Expect(err).To(HaveOccurred(), "make deploy refuses the cert-manager overlay without cert-manager:\n%s", deployOut)
	g.Expect(string(deployOut)).To(ContainSubstring("this cluster has no cert-manager"))
	g.Expect(string(deployOut)).To(ContainSubstring("Install cert-manager v1.19.0 or later first"))
	_, err = c.client.CoreV1().Namespaces().Get(context.Background(), systemNamespace, metav1.GetOptions{})
	g.Expect(err).To(HaveOccurred(), "make deploy created nothing")

	out, err := c.kubectl("", "apply", "-k", filepath.Join(testenv.RepoRoot(), "manifests", "overlays", "cert-manager"))
	g.Expect(err).To(HaveOccurred(), "kubectl apply without cert-manager's CRDs fails:\n%s", out)
	g.Expect(out).To(ContainSubstring(`no matches for kind "Certificate" in version "cert-manager.io/v1"`))
	g.Expect(out).To(ContainSubstring("validatingwebhookconfiguration.admissionregistration.k8s.io/daemonset-guard created"), "the rest of the overlay was created")
	mutating, validating := c.webhooksRegistered(t)
	g.Expect(mutating+validating).To(BeZero(), "no webhook is registered before a replica is ready")
	g.Expect(c.createDaemonSet(t, "fluentd", false)).To(Succeed(), "DaemonSet writes are not blocked")
}

// TestTheSelfManagedInstallRegistersItsWebhookOnceItRuns installs the
// self-managed variant as shipped, by the kustomize overlay and by the Helm
// chart (into another namespace than the overlay's), then runs the webhook
// on this host as the Deployment's container runs it (its args, its
// ServiceAccount's RBAC, its policy ConfigMap; only ports and paths moved to
// the host), with the Service's EndpointSlice pointing here: the webhook
// issues its certificate, registers its webhooks, and the API server calls
// it through the Service for the next DaemonSet; stopped, it leaves the
// validating webhook failing closed, as designed.
func TestTheSelfManagedInstallRegistersItsWebhookOnceItRuns(t *testing.T) {
	t.Run("by the kustomize overlay", func(t *testing.T) {
		c := newInstallCluster(t)
		overlay := filepath.Join(testenv.RepoRoot(), "manifests", "overlays", "self-managed")
		out, err := c.kubectl("", "apply", "-k", overlay)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "kubectl apply -k:\n%s", out)
		rendered, err := c.kubectl("", "kustomize", overlay)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		testSelfManagedInstall(t, c, rendered)
	})
	t.Run("by the Helm chart", func(t *testing.T) {
		c := newInstallCluster(t)
		c.namespace = "guard"
		out, err := helm(t, "", "install", "daemonset-guard", chartDir, "--kubeconfig", c.kubeconfig,
			"--namespace", c.namespace, "--create-namespace", "-f", variantValues("self-managed"))
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "helm install:\n%s", out)
		rendered, err := helm(t, "", "get", "manifest", "daemonset-guard", "--kubeconfig", c.kubeconfig, "--namespace", c.namespace)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "helm get manifest:\n%s", rendered)
		testSelfManagedInstall(t, c, rendered)
	})
}

// testSelfManagedInstall runs the webhook of the rendered manifests, which
// are installed in c.
func testSelfManagedInstall(t *testing.T, c *installCluster, rendered string) {
	g := NewWithT(t)
	ctx := context.Background()
	mutating, validating := c.webhooksRegistered(t)
	g.Expect(mutating+validating).To(BeZero(), "nothing is registered before the webhook runs")
	g.Expect(c.createDaemonSet(t, "before", false)).To(Succeed())

	deployment, policyFile := deploymentAndPolicy(t, rendered)
	port := testenv.FreePort(t)
	c.routeServiceHere(t, port)
	metricsPort := testenv.FreePort(t)
	stop := runLikeTheDeployment(t, deployment, policyFile, t.TempDir(), port, metricsPort, serviceAccountKubeconfig(t, c, "daemonset-guard"), c.namespace)

	g.Eventually(func() [2]int {
		m, v := c.webhooksRegistered(t)
		return [2]int{m, v}
	}, 30*time.Second, 250*time.Millisecond).Should(Equal([2]int{1, 1}), "the webhook registers both webhooks once ready")
	v, err := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*v.Webhooks[0].ClientConfig.Service).To(And(HaveField("Name", "daemonset-guard"), HaveField("Namespace", c.namespace)))
	g.Expect(v.Webhooks[0].ClientConfig.CABundle).NotTo(BeEmpty())
	g.Expect(*v.Webhooks[0].FailurePolicy).To(BeEquivalentTo("Fail"))

	g.Eventually(c.webhookWarns(t), 30*time.Second, 250*time.Millisecond).Should(Succeed(), "the API server calls the webhook through the Service, trusting the registered CA")

	t.Run("leads, with the install's RBAC, and reports a node change on the DaemonSet it left without a node", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func() string {
			lease, err := c.client.CoordinationV1().Leases(c.namespace).Get(ctx, "daemonset-guard", metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil {
				return ""
			}
			return *lease.Spec.HolderIdentity
		}, 30*time.Second, 250*time.Millisecond).ShouldNot(BeEmpty(), "the webhook holds the Lease")
		testenv.CreateReadyNodes(t, c.client, fixture.Node("install-1", []string{"pool", "install"}))
		ds := fixture.Written("pooled", func(ds *appsv1.DaemonSet) {
			ds.Namespace = "apps"
			ds.Spec.Template.Spec.NodeSelector = map[string]string{"pool": "install"}
		})
		created, err := c.client.AppsV1().DaemonSets("apps").Create(ctx, ds, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		// The re-evaluation takes the new DaemonSet as it is; only a change
		// after that is news.
		g.Eventually(func() error {
			node, err := c.client.CoreV1().Nodes().Get(ctx, "install-1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			node.Labels["pool"] = map[string]string{"install": "elsewhere", "elsewhere": "install"}[node.Labels["pool"]]
			if _, err := c.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
				return err
			}
			events, err := c.client.EventsV1().Events("apps").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, e := range events.Items {
				if e.Regarding.UID == created.UID && e.Reason == "NoEligibleNodes" {
					return nil
				}
			}
			return errors.New("no NoEligibleNodes Event on the DaemonSet yet")
		}, 60*time.Second, 3*time.Second).Should(Succeed(), "relabelled away and back until an Event says the DaemonSet lost its node")
	})

	t.Run("repairs, with the install's RBAC and within seconds, an emptied caBundle and a deleted Secret", func(t *testing.T) {
		g := NewWithT(t)
		configs := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		live, err := configs.Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		want := live.Webhooks[0].ClientConfig.CABundle
		live.Webhooks[0].ClientConfig.CABundle = nil
		_, err = configs.Update(ctx, live, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		// The registrar checks every 30 seconds; only its watch is this fast.
		g.Eventually(func() []byte {
			v, err := configs.Get(ctx, "daemonset-guard", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			return v.Webhooks[0].ClientConfig.CABundle
		}, 15*time.Second, 250*time.Millisecond).Should(Equal(want))

		secrets := c.client.CoreV1().Secrets(c.namespace)
		g.Expect(secrets.Delete(ctx, "daemonset-guard-tls", metav1.DeleteOptions{})).To(Succeed())
		// The certificates are rechecked every 10 minutes; only the watch
		// is this fast.
		g.Eventually(func() error {
			s, err := secrets.Get(ctx, "daemonset-guard-tls", metav1.GetOptions{})
			if err == nil && len(s.Data["tls.crt"]) == 0 {
				return errors.New("recreated without a certificate")
			}
			return err
		}, 15*time.Second, 250*time.Millisecond).Should(Succeed(), "the webhook recreates its Secret")
		recreated, err := secrets.Get(ctx, "daemonset-guard-tls", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(func() []byte {
			v, err := configs.Get(ctx, "daemonset-guard", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			return v.Webhooks[0].ClientConfig.CABundle
		}, 15*time.Second, 250*time.Millisecond).Should(Equal(append(append([]byte{}, recreated.Data["ca.crt"]...), want...)),
			"the configurations trust the new CA at once, and the lost one beside it for replicas still serving its certificates")
		g.Eventually(func() error { return c.createDaemonSet(t, "after-recreate", true) }, 15*time.Second, 250*time.Millisecond).
			Should(Succeed(), "the API server calls the webhook under the new certificate")
	})

	t.Run("serves metrics only to callers the API server authorizes for them", func(t *testing.T) {
		g := NewWithT(t)
		current, err := c.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "daemonset-guard", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		scrape := scraper(t, current.Webhooks[0].ClientConfig.CABundle, metricsPort, c.namespace)
		g.Expect(scrape("")).To(Equal(http.StatusUnauthorized), "an anonymous caller")
		g.Expect(scrape(c.tokenOf(t, "stranger"))).To(Equal(http.StatusForbidden), "a ServiceAccount without the reader role")
		_, err = c.client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-daemonset-guard-metrics"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "daemonset-guard-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: c.namespace}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(scrape(c.tokenOf(t, "prometheus"))).To(Equal(http.StatusOK), "a scraper bound to the shipped daemonset-guard-metrics-reader")
	})

	daemonSets := c.client.AppsV1().DaemonSets("apps")
	kept := fixture.Written("kept")
	kept.Namespace, kept.Finalizers = "apps", []string{"example.com/cleanup"}
	_, err = daemonSets.Create(ctx, kept, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	stop()
	down := MatchError(ContainSubstring(`failed calling webhook "validate.daemonset-guard.io"`))
	g.Expect(c.createDaemonSet(t, "down", true)).To(down, "once registered, the validating webhook fails closed")

	// What can never matter is not sent, so it succeeds while the webhook is
	// down: an update of finalizers or status alone, and a deletion through
	// to the removal of its last finalizer.
	update := func(change func(*appsv1.DaemonSet)) error {
		ds, err := daemonSets.Get(ctx, "kept", metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(ds)
		_, err = daemonSets.Update(ctx, ds, metav1.UpdateOptions{})
		return err
	}
	g.Expect(update(func(ds *appsv1.DaemonSet) { ds.Labels = map[string]string{"team": "platform"} })).To(down, "a label change is judged")
	g.Expect(update(func(ds *appsv1.DaemonSet) { ds.Spec.MinReadySeconds = 30 })).To(down, "a spec change is judged")
	g.Expect(update(func(ds *appsv1.DaemonSet) { ds.Finalizers = append(ds.Finalizers, "example.com/audit") })).To(Succeed(), "a finalizer added")
	live, err := daemonSets.Get(ctx, "kept", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	live.Status.NumberMisscheduled = 1
	_, err = daemonSets.UpdateStatus(ctx, live, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred(), "a status update")
	g.Expect(daemonSets.Delete(ctx, "kept", metav1.DeleteOptions{})).To(Succeed(), "a deletion")
	g.Expect(update(func(ds *appsv1.DaemonSet) {
		ds.Finalizers = nil
		ds.Labels = map[string]string{"team": "gone"}
	})).To(Succeed(), "anything, once the object is being deleted")
	_, err = daemonSets.Get(ctx, "kept", metav1.GetOptions{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the last finalizer removed, the DaemonSet is gone: %v", err)
}

// deploymentAndPolicy finds the Deployment in rendered manifests and writes
// the policy of its ConfigMap to a file.
func deploymentAndPolicy(t *testing.T, rendered string) (*appsv1.Deployment, string) {
	t.Helper()
	var deployment *appsv1.Deployment
	policyFile := ""
	reader := yaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Deployment":
			deployment = &appsv1.Deployment{}
			if err := sigsyaml.Unmarshal(doc, deployment); err != nil {
				t.Fatal(err)
			}
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			if err := sigsyaml.Unmarshal(doc, cm); err != nil {
				t.Fatal(err)
			}
			if cm.Name == "daemonset-guard-policy" {
				policyFile = filepath.Join(t.TempDir(), "policy.yaml")
				if err := os.WriteFile(policyFile, []byte(cm.Data["policy.yaml"]), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if deployment == nil || policyFile == "" {
		t.Fatal("the overlay renders no Deployment or no policy ConfigMap")
	}
	return deployment, policyFile
}

// runLikeTheDeployment runs daemonset-guard with the Deployment's args, with
// the ports, certificate directory and policy file moved to this host, and
// returns a function that stops it.
func runLikeTheDeployment(t *testing.T, deployment *appsv1.Deployment, policyFile, certDir string, port, metricsPort int, kubeconfig, namespace string) (stop func()) {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "daemonset-guard")
	if out, err := exec.Command("go", "build", "-o", binary, filepath.Join(testenv.RepoRoot(), "cmd", "daemonset-guard")).CombinedOutput(); err != nil {
		t.Fatalf("building daemonset-guard: %v\n%s", err, out)
	}
	onHost := map[string]string{
		"--webhook-port":              fmt.Sprint(port),
		"--webhook-cert-dir":          certDir,
		"--policy-file":               policyFile,
		"--health-probe-bind-address": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--metrics-bind-address":      fmt.Sprintf("127.0.0.1:%d", metricsPort),
	}
	var args []string
	for _, arg := range deployment.Spec.Template.Spec.Containers[0].Args {
		name, _, _ := strings.Cut(arg, "=")
		if v, ok := onHost[name]; ok {
			arg = name + "=" + v
		}
		args = append(args, arg)
	}
	// In the cluster, the Lease's namespace is the pod's own, which a
	// process on this host does not have.
	args = append(args, "--kubeconfig="+kubeconfig, "--leader-election-namespace="+namespace)
	var logs bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), containerEnv(t, &deployment.Spec.Template.Spec.Containers[0])...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("daemonset-guard %s\n%s", strings.Join(args, " "), logs.String())
		}
	})
	return stop
}

// containerEnv resolves the container's environment as the kubelet does
// (resource fields through its own helper), and holds the Deployment to
// giving Go its memory limit: the process then starts with it, which a value
// Go cannot parse would stop at once.
func containerEnv(t *testing.T, container *corev1.Container) []string {
	t.Helper()
	var env []string
	for _, e := range container.Env {
		value := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.ResourceFieldRef == nil {
				t.Fatalf("env %s: only values and resource fields can be resolved on this host", e.Name)
			}
			var err error
			if value, err = resourcehelper.ExtractContainerResourceValue(e.ValueFrom.ResourceFieldRef, container); err != nil {
				t.Fatalf("env %s: %v", e.Name, err)
			}
		}
		env = append(env, e.Name+"="+value)
	}
	limit := container.Resources.Limits.Memory()
	if want := fmt.Sprintf("GOMEMLIMIT=%d", limit.Value()); limit.IsZero() || !slices.Contains(env, want) {
		t.Fatalf("the container's environment %v lacks %s: without a soft limit at the memory limit, Go's heap growth at tens of thousands of Nodes ends in an OOM kill", env, want)
	}
	return env
}

// tokenOf returns a token of the named ServiceAccount of the webhook's
// namespace, creating the account if it does not exist.
func (c *installCluster) tokenOf(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	accounts := c.client.CoreV1().ServiceAccounts(c.namespace)
	if _, err := accounts.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	token, err := accounts.CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s: %v", name, err)
	}
	return token.Status.Token
}

// scraper returns a function that GETs the webhook's /metrics on this host
// with a bearer token (none when empty) and returns the status code. It
// verifies the server against the registered CA bundle under the Service's
// DNS name: the metrics are served with the webhook's own certificate.
func scraper(t *testing.T, caBundle []byte, port int, namespace string) func(token string) int {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caBundle) {
		t.Fatal("the CA bundle holds no certificate")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: "daemonset-guard." + namespace + ".svc"}}}
	return func(token string) int {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("scraping: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK && !bytes.Contains(body, []byte("daemonset_guard_decisions_total")) {
			t.Errorf("/metrics answered 200 without daemonset-guard's metrics:\n%s", body)
		}
		return resp.StatusCode
	}
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// named ServiceAccount, so that what runs with it has only its RBAC.
func serviceAccountKubeconfig(t *testing.T, c *installCluster, name string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.env.Config.Host, CertificateAuthorityData: c.env.Config.CAData}
	cfg.AuthInfos["daemonset-guard"] = &clientcmdapi.AuthInfo{Token: c.tokenOf(t, name)}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "daemonset-guard"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// routeServiceHere points the webhook Service at this host's port, as the
// endpoints controller points it at ready pods in a cluster. EndpointSlices
// may not hold loopback addresses, so it takes the host's own.
func (c *installCluster) routeServiceHere(t *testing.T, port int) {
	t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "daemonset-guard-host", Namespace: c.namespace, Labels: map[string]string{discoveryv1.LabelServiceName: "daemonset-guard"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{hostIP(t)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := c.client.DiscoveryV1().EndpointSlices(c.namespace).Create(context.Background(), slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipNet, ok := a.(*net.IPNet); ok && ipNet.IP.To4() != nil && !ipNet.IP.IsLoopback() && !ipNet.IP.IsLinkLocalUnicast() {
			return ipNet.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address, which the API server needs to reach the webhook through its Service")
	return ""
}
