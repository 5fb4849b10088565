// Command daemonset-guard serves the daemonset-guard admission webhooks, and
// gives their answers offline:
//
//	daemonset-guard [flags]          serve the webhooks
//	daemonset-guard check [flags]    what admission would do to DaemonSet files
//	daemonset-guard audit [flags]    what it would say of a cluster's DaemonSets
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "check":
			os.Exit(runCheck(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "audit":
			os.Exit(runAudit(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
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
	pprofBindAddress       string
	policyFile             string
	kubeconfig             string
	enableHTTP2            bool
	clientCAFile           string
	certMode               string
	certSecret             string
	webhookService         string
	webhookConfiguration   string
	registerWebhooks       bool
	zap                    zap.Options
}

// Certificate modes.
const (
	certModeFiles       = "files"
	certModeSelfManaged = "self-managed"
)

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("daemonset-guard", flag.ContinueOnError)
	fs.IntVar(&cfg.webhookPort, "webhook-port", 9443, "Port the webhook server listens on.")
	fs.StringVar(&cfg.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory holding the serving certificate tls.crt and its key tls.key; both are reloaded when they change.")
	fs.StringVar(&cfg.healthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&cfg.metricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	fs.StringVar(&cfg.pprofBindAddress, "pprof-bind-address", "0", "Address of the Go profiler's /debug/pprof endpoints; 0 disables them. Profiles can reveal request contents: bind it to localhost or keep it off.")
	fs.StringVar(&cfg.policyFile, "policy-file", "", "Policy file, watched and reloaded on change; empty uses the built-in policy.")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "Kubeconfig to reach the API server; empty uses $KUBECONFIG, then the in-cluster configuration.")
	fs.BoolVar(&cfg.enableHTTP2, "enable-http2", false, "Serve HTTP/2 as well as HTTP/1.1. Off by default: the API server speaks HTTP/1.1 to webhooks, and HTTP/2 has carried denial-of-service flaws (CVE-2023-44487).")
	fs.StringVar(&cfg.clientCAFile, "client-ca-file", "", "Require callers to present a client certificate signed by a CA in this PEM file (mutual TLS), so that only the API server can call the webhooks.")
	fs.StringVar(&cfg.certMode, "cert-mode", certModeFiles, `Where the serving certificate comes from: "files" (--webhook-cert-dir, e.g. a Secret written by cert-manager) or "self-managed" (the webhook issues and renews it, keeping it in --cert-secret).`)
	fs.StringVar(&cfg.certSecret, "cert-secret", "daemonset-guard-system/daemonset-guard-tls", "Self-managed mode: namespace/name of the Secret that holds the CA and the serving certificate.")
	fs.StringVar(&cfg.webhookService, "webhook-service", "daemonset-guard-system/daemonset-guard", "namespace/name of the Service the API server calls: the registered webhooks point at it, and self-managed certificates are issued for its DNS names.")
	fs.StringVar(&cfg.webhookConfiguration, "webhook-configuration", "daemonset-guard", "With --register-webhooks: name of the mutating and validating webhook configurations to fill in.")
	fs.BoolVar(&cfg.registerWebhooks, "register-webhooks", false, "Once this replica is ready, write the webhooks (rules, --webhook-service, CA bundle) into the two webhook configurations, which the manifests ship empty, and keep them there. Until then nothing is intercepted, so a webhook that never starts cannot block DaemonSet writes.")
	cfg.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.certMode != certModeFiles && cfg.certMode != certModeSelfManaged {
		return config{}, fmt.Errorf("--cert-mode must be %q or %q, not %q", certModeFiles, certModeSelfManaged, cfg.certMode)
	}
	for _, f := range []struct{ name, value string }{{"--cert-secret", cfg.certSecret}, {"--webhook-service", cfg.webhookService}} {
		if ns, name, ok := strings.Cut(f.value, "/"); !ok || ns == "" || name == "" {
			return config{}, fmt.Errorf("%s must be namespace/name, not %q", f.name, f.value)
		}
	}
	return cfg, nil
}
