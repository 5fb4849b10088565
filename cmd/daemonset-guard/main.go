// Command daemonset-guard serves the daemonset-guard admission webhooks.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&cfg.zap)))
	if err := run(ctrl.SetupSignalHandler(), cfg); err != nil {
		ctrl.Log.Error(err, "daemonset-guard stopped")
		os.Exit(1)
	}
}

// config is everything the command line sets.
type config struct {
	webhookPort            int
	webhookCertDir         string
	healthProbeBindAddress string
	metricsBindAddress     string
	policyFile             string
	kubeconfig             string
	enableHTTP2            bool
	zap                    zap.Options
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("daemonset-guard", flag.ContinueOnError)
	fs.IntVar(&cfg.webhookPort, "webhook-port", 9443, "Port the webhook server listens on.")
	fs.StringVar(&cfg.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory holding the serving certificate tls.crt and its key tls.key; both are reloaded when they change.")
	fs.StringVar(&cfg.healthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&cfg.metricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	fs.StringVar(&cfg.policyFile, "policy-file", "", "Policy file, watched and reloaded on change; empty uses the built-in policy.")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "Kubeconfig to reach the API server; empty uses $KUBECONFIG, then the in-cluster configuration.")
	fs.BoolVar(&cfg.enableHTTP2, "enable-http2", false, "Serve HTTP/2 as well as HTTP/1.1. Off by default: the API server speaks HTTP/1.1 to webhooks, and HTTP/2 has carried denial-of-service flaws (CVE-2023-44487).")
	cfg.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, nil
}
