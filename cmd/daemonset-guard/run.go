package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/daemonset-guard/daemonset-guard/certs"
	"github.com/daemonset-guard/daemonset-guard/internal/metricsauth"
	"github.com/daemonset-guard/daemonset-guard/webhook"
	"github.com/daemonset-guard/daemonset-guard/webhook/registration"
)

// run serves the webhooks until ctx is done.
func run(ctx context.Context, cfg config) error {
	restConfig, err := restConfig(cfg.kubeconfig)
	if err != nil {
		return err
	}
	var selfManaged *certs.SelfManaged
	if cfg.certMode == certModeSelfManaged {
		if selfManaged, err = newSelfManaged(restConfig, cfg); err != nil {
			return err
		}
		// The server starts with a valid certificate or not at all.
		if err := selfManaged.SyncUntilValid(ctx); err != nil {
			return err
		}
	}
	// Loading the certificate here, not when the server starts, turns a
	// missing or broken certificate into an error that names the directory.
	watcher, err := certwatcher.New(filepath.Join(cfg.webhookCertDir, "tls.crt"), filepath.Join(cfg.webhookCertDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("loading the serving certificate from --webhook-cert-dir %s: %w", cfg.webhookCertDir, err)
	}

	var clientCAs *dynamiccertificates.DynamicFileCAContent
	if cfg.clientCAFile != "" {
		// The API server's own --client-ca-file loader: it reloads the file
		// when it changes and keeps the last good bundle when it breaks.
		if clientCAs, err = dynamiccertificates.NewDynamicCAContentFromFile("client-ca", cfg.clientCAFile); err != nil {
			return fmt.Errorf("loading --client-ca-file: %w", err)
		}
	}
	tlsOpts := servingTLS(watcher, cfg.enableHTTP2, clientCAs, cfg.clientCAAllowedNames)

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Cache:                  webhook.CacheOptions(),
		Metrics:                metricsOptions(cfg, watcher),
		HealthProbeBindAddress: cfg.healthProbeBindAddress,
		PprofBindAddress:       cfg.pprofBindAddress,
		// Every replica serves the webhooks; the leader alone re-evaluates
		// DaemonSets when nodes change.
		LeaderElection:          cfg.leaderElect,
		LeaderElectionID:        "daemonset-guard",
		LeaderElectionNamespace: cfg.leaderElectionNS,
		// A replica that stops hands the lead on at once, not after the
		// Lease expires.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Port:    cfg.webhookPort,
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.Add(watcher); err != nil {
		return fmt.Errorf("adding the certificate watcher: %w", err)
	}
	if clientCAs != nil {
		if err := mgr.Add(webhook.EveryReplica(manager.RunnableFunc(func(ctx context.Context) error { clientCAs.Run(ctx, 1); return nil }))); err != nil {
			return fmt.Errorf("adding the client CA watcher: %w", err)
		}
	}
	if selfManaged != nil {
		if err := mgr.Add(webhook.EveryReplica(selfManaged)); err != nil {
			return fmt.Errorf("adding the certificate renewal: %w", err)
		}
	}
	validCert := certs.ServingCertificateValid(watcher.GetCertificate, time.Now)
	if err := mgr.AddReadyzCheck("serving-certificate", func(*http.Request) error { return validCert() }); err != nil {
		return fmt.Errorf("adding the certificate readiness check: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	ready, err := webhook.Setup(ctx, mgr, webhook.Options{PolicyFile: cfg.policyFile, Log: ctrl.Log.WithName("webhook"), AuditInterval: cfg.auditInterval, ReportFormat: cfg.reportFormat})
	if err != nil {
		return err
	}
	if cfg.registerWebhooks {
		registrar, err := newRegistrar(restConfig, cfg, selfManaged, func() error { return errors.Join(ready(), validCert()) })
		if err != nil {
			return err
		}
		if err := mgr.Add(webhook.EveryReplica(registrar)); err != nil {
			return fmt.Errorf("adding the webhook registration: %w", err)
		}
	}
	return mgr.Start(ctx)
}

// newRegistrar registers the webhooks once this replica is ready. The CA
// comes from the self-managed certificates, or else from the ca.crt that
// cert-manager writes beside the serving pair; cert-manager's cainjector then
// keeps the caBundle current, so an existing one is left alone.
func newRegistrar(restConfig *rest.Config, cfg config, selfManaged *certs.SelfManaged, ready func() error) (*registration.Registrar, error) {
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	serviceNS, serviceName, _ := strings.Cut(cfg.webhookService, "/")
	r := &registration.Registrar{
		Client:  client,
		Name:    cfg.webhookConfiguration,
		Service: types.NamespacedName{Namespace: serviceNS, Name: serviceName},
		Ready:   ready,
		Log:     ctrl.Log.WithName("registration"),
	}
	if selfManaged != nil {
		r.CABundle, r.Resync = selfManaged.CABundle, selfManaged.BundleChanged()
	} else {
		caFile := filepath.Join(cfg.webhookCertDir, "ca.crt")
		r.KeepCABundle = true
		r.CABundle = func() ([]byte, error) {
			b, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("the API server must trust the CA that signed the serving certificate, and %s (which cert-manager writes) cannot be read: %w", caFile, err)
			}
			return b, nil
		}
	}
	return r, nil
}

// servingTLS serves TLS 1.2 or newer with the watcher's current certificate,
// HTTP/1.1 only unless HTTP/2 is enabled, and, given client CAs, only to
// callers with a certificate that one of the current CAs signed and, given
// allowed names, that names one of them.
func servingTLS(watcher *certwatcher.CertWatcher, enableHTTP2 bool, clientCAs *dynamiccertificates.DynamicFileCAContent, allowedNames []string) []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.GetCertificate = watcher.GetCertificate
		if !enableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
		if clientCAs == nil {
			return
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.VerifyConnection = certs.AllowNames(allowedNames)
		// Each handshake verifies against the CAs of the moment, so a
		// rotated client CA needs no restart.
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			verify, ok := clientCAs.VerifyOptions()
			if !ok {
				return nil, errors.New("no client CA loaded")
			}
			current := c.Clone()
			current.GetConfigForClient = nil
			current.ClientCAs = verify.Roots
			return current, nil
		}
	}}
}

// metricsOptions serves /metrics over HTTPS with the serving certificate,
// to callers whose bearer token the API server authenticates (TokenReview)
// and authorizes for get on /metrics (SubjectAccessReview), as kubebuilder's
// scaffolds do (through metricsauth, which decides as controller-runtime's
// filter without linking k8s.io/apiserver); with --metrics-secure=false, over
// plain HTTP to anyone.
func metricsOptions(cfg config, watcher *certwatcher.CertWatcher) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: cfg.metricsBindAddress}
	if !cfg.metricsSecure {
		return opts
	}
	opts.SecureServing = true
	opts.FilterProvider = metricsauth.WithAuthenticationAndAuthorization
	opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.GetCertificate = watcher.GetCertificate
		c.NextProtos = []string{"http/1.1"}
	}}
	return opts
}

func newSelfManaged(restConfig *rest.Config, cfg config) (*certs.SelfManaged, error) {
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	secretNS, secretName, _ := strings.Cut(cfg.certSecret, "/")
	serviceNS, serviceName, _ := strings.Cut(cfg.webhookService, "/")
	return &certs.SelfManaged{
		Client:   client,
		Secret:   types.NamespacedName{Namespace: secretNS, Name: secretName},
		DNSNames: []string{serviceName + "." + serviceNS + ".svc", serviceName + "." + serviceNS + ".svc.cluster.local"},
		Dir:      cfg.webhookCertDir,
		Log:      ctrl.Log.WithName("certs"),
	}, nil
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
