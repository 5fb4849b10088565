// Command cert-manager runs cert-manager's own controllers, out of cluster,
// against the API server of a kubeconfig: the certificate controllers, the
// CertificateRequest approver, the CA and self-signed issuers, the Issuer
// readiness controller and the cainjector for webhook configurations. These
// are the parts daemonset-guard's cert-manager variant uses, built from
// cert-manager's root module (the registry serves it, but not its nested
// cmd/controller and cmd/cainjector modules, whose main packages only wire
// these same packages together). The e2e tests run it in place of a
// cert-manager Deployment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The Issuer kinds the issuers controller can set up, by registration.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// controllers are the cert-manager controllers a CA bootstrapped by a
// self-signed Issuer needs, by their registered names.
var controllers = []string{
	trigger.ControllerName, keymanager.ControllerName, requestmanager.ControllerName,
	issuing.ControllerName, readiness.ControllerName, revisionmanager.ControllerName,
	approver.ControllerName, crca.CRControllerName, crselfsigned.CRControllerName, issuers.ControllerName,
}

type config struct {
	kubeconfig string
	workers    int
}

func main() {
	var cfg config
	// Its own flag set: controller-runtime defines --kubeconfig on the
	// global one.
	fs := flag.NewFlagSet("cert-manager", flag.ExitOnError)
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the API server to run against")
	fs.IntVar(&cfg.workers, "workers", 2, "workers of each controller")
	_ = fs.Parse(os.Args[1:])
	if cfg.kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "cert-manager: --kubeconfig is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	zl, err := zap.NewDevelopment()
	if err != nil {
		return err
	}
	log := zapr.NewLogger(zl)
	klog.SetLogger(log)
	ctrl.SetLogger(log)
	ctx = logf.NewContext(ctx, log)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(controllers)+1)
	if err := runControllers(ctx, cfg, &wg, errs); err != nil {
		return err
	}
	if err := runCAInjector(ctx, cfg, log, &wg, errs); err != nil {
		return err
	}
	log.Info("running", "controllers", controllers, "cainjector", "webhook configurations")
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		cancel()
	}
	wg.Wait()
	return first
}

// runControllers builds cert-manager's controllers as its controller
// binary does (a ContextFactory, then each registered constructor), starts
// the informer factories they share, and runs them.
func runControllers(ctx context.Context, cfg config, wg *sync.WaitGroup, errs chan<- error) error {
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         cfg.kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: "cert-manager"},
		// cert-manager's defaults.
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	known := controllerpkg.Known()
	var built []controllerpkg.Interface
	for _, name := range controllers {
		construct, ok := known[name]
		if !ok {
			return fmt.Errorf("cert-manager registers no controller %q", name)
		}
		c, err := construct(factory)
		if err != nil {
			return fmt.Errorf("building controller %s: %w", name, err)
		}
		built = append(built, c)
	}
	// The controllers registered their informers on the factories that every
	// built Context shares; started now, they serve them all.
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	for i, c := range built {
		wg.Go(func() {
			if err := c.Run(cfg.workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", controllers[i], err)
			}
		})
	}
	return nil
}

// runCAInjector runs the cainjector's reconcilers for webhook
// configurations in a controller-runtime manager, as its binary does.
func runCAInjector(ctx context.Context, cfg config, log logr.Logger, wg *sync.WaitGroup, errs chan<- error) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return err
	}
	// Its field manager is named from its user agent, as the cainjector
	// binary sets it.
	restConfig = util.RestConfigWithUserAgent(restConfig, "cainjector")
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme, admissionregistrationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:  scheme,
		Logger:  log.WithName("cainjector"),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// As the cainjector: Secrets are read, not cached; it watches their
		// metadata only.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("building the cainjector's manager: %w", err)
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			"mutatingwebhookconfiguration":   true,
			"validatingwebhookconfiguration": true,
		},
	}); err != nil {
		return fmt.Errorf("registering the cainjector's reconcilers: %w", err)
	}
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("cainjector: %w", err)
		}
	})
	return nil
}
