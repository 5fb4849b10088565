package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/daemonset-guard/daemonset-guard/webhook"
)

// run serves the webhooks until ctx is done.
func run(ctx context.Context, cfg config) error {
	restConfig, err := restConfig(cfg.kubeconfig)
	if err != nil {
		return err
	}
	// Loading the certificate here, not when the server starts, turns a
	// missing or broken certificate into an error that names the directory.
	certs, err := certwatcher.New(filepath.Join(cfg.webhookCertDir, "tls.crt"), filepath.Join(cfg.webhookCertDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("loading the serving certificate from --webhook-cert-dir %s: %w", cfg.webhookCertDir, err)
	}
	tlsOpts := []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.GetCertificate = certs.GetCertificate
		if !cfg.enableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Cache:                  webhook.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: cfg.metricsBindAddress},
		HealthProbeBindAddress: cfg.healthProbeBindAddress,
		// Every replica serves; there is nothing to lead.
		LeaderElection: false,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Port:    cfg.webhookPort,
			CertDir: cfg.webhookCertDir,
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.Add(certs); err != nil {
		return fmt.Errorf("adding the certificate watcher: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := webhook.Setup(ctx, mgr, webhook.Options{PolicyFile: cfg.policyFile, Log: ctrl.Log.WithName("webhook")}); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		c, err := ctrlconfig.GetConfig()
		if err != nil {
			return nil, fmt.Errorf("finding the API server: %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading --kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}
