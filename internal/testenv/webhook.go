package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/daemonset-guard/daemonset-guard/internal/warnings"
	"github.com/daemonset-guard/daemonset-guard/webhook"
)

// Webhook is daemonset-guard running in the test's process behind a real API
// server, and a client of that API server that keeps its warnings.
type Webhook struct {
	Client   kubernetes.Interface
	Warnings *warnings.Recorder
	// Config reaches the API server as its administrator.
	Config *rest.Config
	// Metrics holds the webhook's own metrics, from its latest Start.
	Metrics *prometheus.Registry

	t          *testing.T
	wio        envtest.WebhookInstallOptions
	policyFile string
	probe      string
	stop       func()
}

// StartWebhook starts a control plane and daemonset-guard with the policy
// file, registered by the webhook configurations that ship, and waits until
// the webhook is ready.
func StartWebhook(t *testing.T, policyFile string) *Webhook {
	t.Helper()
	cfg, wio := Start(t, "")
	w := &warnings.Recorder{}
	clientCfg := rest.CopyConfig(cfg)
	clientCfg.WarningHandler = w
	wh := &Webhook{
		Client: kubernetes.NewForConfigOrDie(clientCfg), Warnings: w, Config: cfg,
		t: t, wio: wio, policyFile: policyFile, probe: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
	}
	wh.Start()
	t.Cleanup(wh.Stop)
	return wh
}

// Start runs the webhook (again, after Stop) on its address and waits until
// it is ready.
func (wh *Webhook) Start() {
	t := wh.t
	t.Helper()
	mgr, err := ctrl.NewManager(wh.Config, ctrl.Options{
		Cache:                  webhook.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: wh.probe,
		WebhookServer:          ctrlwebhook.NewServer(ctrlwebhook.Options{Host: wh.wio.LocalServingHost, Port: wh.wio.LocalServingPort, CertDir: wh.wio.LocalServingCertDir}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wh.Metrics = prometheus.NewRegistry()
	if _, err := webhook.Setup(ctx, mgr, webhook.Options{PolicyFile: wh.policyFile, Log: testr.New(t), Registerer: wh.Metrics}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- mgr.Start(ctx) }()
	wh.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
	NewWithT(t).Eventually(wh.ready, 30*time.Second, 100*time.Millisecond).Should(Succeed(), "the webhook should become ready")
}

// Stop stops the webhook, as a crash would, until Start.
func (wh *Webhook) Stop() {
	if wh.stop != nil {
		wh.stop()
		wh.stop = nil
	}
}

// CertDir holds the serving certificate (tls.crt, tls.key) the webhook
// watches; a test may replace it.
func (wh *Webhook) CertDir() string { return wh.wio.LocalServingCertDir }

// Address is the host:port the webhook serves on.
func (wh *Webhook) Address() string {
	return net.JoinHostPort(wh.wio.LocalServingHost, strconv.Itoa(wh.wio.LocalServingPort))
}

func (wh *Webhook) ready() error {
	resp, err := http.Get("http://" + wh.probe + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %s", resp.Status)
	}
	return nil
}

// FreePort returns a port on 127.0.0.1 that nothing listens on now.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
