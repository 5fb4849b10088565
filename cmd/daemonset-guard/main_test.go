package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	t.Run("defaults follow kubebuilder's", func(t *testing.T) {
		cfg, err := parseFlags(nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.webhookPort != 9443 || cfg.healthProbeBindAddress != ":8081" || cfg.metricsBindAddress != ":8080" || cfg.pprofBindAddress != "0" || cfg.enableHTTP2 {
			t.Errorf("unexpected defaults: %+v", cfg)
		}
	})
	t.Run("reads every flag", func(t *testing.T) {
		cfg, err := parseFlags([]string{"--webhook-port=10443", "--webhook-cert-dir=/certs", "--policy-file=/etc/policy.yaml",
			"--kubeconfig=/kc", "--metrics-bind-address=0", "--health-probe-bind-address=:9000", "--pprof-bind-address=127.0.0.1:6060", "--zap-log-level=debug"})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.webhookPort != 10443 || cfg.webhookCertDir != "/certs" || cfg.policyFile != "/etc/policy.yaml" || cfg.kubeconfig != "/kc" ||
			cfg.metricsBindAddress != "0" || cfg.healthProbeBindAddress != ":9000" || cfg.pprofBindAddress != "127.0.0.1:6060" {
			t.Errorf("flags not read: %+v", cfg)
		}
	})
	t.Run("rejects an unknown flag", func(t *testing.T) {
		if _, err := parseFlags([]string{"--port=1"}); err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -port") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("rejects an unknown certificate mode", func(t *testing.T) {
		if _, err := parseFlags([]string{"--cert-mode=magic"}); err == nil || !strings.Contains(err.Error(), `--cert-mode must be "files" or "self-managed", not "magic"`) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("rejects a Secret reference without namespace", func(t *testing.T) {
		if _, err := parseFlags([]string{"--cert-secret=tls"}); err == nil || !strings.Contains(err.Error(), `--cert-secret must be namespace/name, not "tls"`) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("rejects stray arguments", func(t *testing.T) {
		if _, err := parseFlags([]string{"serve"}); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestRunRefusesToStartWithoutWhatItNeeds(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	// Parsed, never dialled: run stops before it talks to the API server.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config
		want string
	}{
		{"names a kubeconfig that does not exist", config{kubeconfig: filepath.Join(dir, "missing")}, "loading --kubeconfig " + filepath.Join(dir, "missing")},
		{"names the certificate directory when the certificate is missing", config{kubeconfig: kubeconfig, webhookCertDir: dir}, "loading the serving certificate from --webhook-cert-dir " + dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
