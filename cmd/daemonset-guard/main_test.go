package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

func TestParseFlags(t *testing.T) {
	t.Run("defaults follow kubebuilder's", func(t *testing.T) {
		cfg, err := parseFlags(nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.webhookPort != 9443 || cfg.healthProbeBindAddress != ":8081" || cfg.metricsBindAddress != ":8443" || !cfg.metricsSecure || cfg.pprofBindAddress != "0" || cfg.enableHTTP2 {
			t.Errorf("unexpected defaults: %+v", cfg)
		}
	})
	t.Run("reads every flag", func(t *testing.T) {
		cfg, err := parseFlags([]string{"--webhook-port=10443", "--webhook-cert-dir=/certs", "--policy-file=/etc/policy.yaml",
			"--kubeconfig=/kc", "--metrics-bind-address=0", "--health-probe-bind-address=:9000", "--pprof-bind-address=127.0.0.1:6060", "--zap-log-level=debug"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.webhookPort != 10443 || cfg.webhookCertDir != "/certs" || cfg.policyFile != "/etc/policy.yaml" || cfg.kubeconfig != "/kc" ||
			cfg.metricsBindAddress != "0" || cfg.healthProbeBindAddress != ":9000" || cfg.pprofBindAddress != "127.0.0.1:6060" {
			t.Errorf("flags not read: %+v", cfg)
		}
	})
	t.Run("rejects an unknown flag", func(t *testing.T) {
		if _, err := parseFlags([]string{"--port=1"}, io.Discard); err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -port") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("rejects an unknown certificate mode", func(t *testing.T) {
		if _, err := parseFlags([]string{"--cert-mode=magic"}, io.Discard); err == nil || !strings.Contains(err.Error(), `--cert-mode must be "files" or "self-managed", not "magic"`) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("rejects a Secret reference without namespace", func(t *testing.T) {
		if _, err := parseFlags([]string{"--cert-secret=tls"}, io.Discard); err == nil || !strings.Contains(err.Error(), `--cert-secret must be namespace/name, not "tls"`) {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("reads the allowed client names, comma-separated", func(t *testing.T) {
		cfg, err := parseFlags([]string{"--client-ca-file=/ca.crt", "--client-ca-allowed-names=kube-apiserver, apiserver.example.com"}, io.Discard)
		if err != nil || !slices.Equal(cfg.clientCAAllowedNames, []string{"kube-apiserver", "apiserver.example.com"}) {
			t.Errorf("names = %q, %v", cfg.clientCAAllowedNames, err)
		}
	})
	t.Run("rejects allowed client names without a client CA", func(t *testing.T) {
		if _, err := parseFlags([]string{"--client-ca-allowed-names=kube-apiserver"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--client-ca-allowed-names needs --client-ca-file") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("rejects a profiler address other hosts can reach", func(t *testing.T) {
		for _, address := range []string{":6060", "0.0.0.0:6060", "10.0.0.1:6060", "example.com:6060"} {
			if _, err := parseFlags([]string{"--pprof-bind-address=" + address}, io.Discard); err == nil || !strings.Contains(err.Error(), "--pprof-bind-address") {
				t.Errorf("%s: error = %v, want a refusal", address, err)
			}
		}
		for _, address := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060", "0"} {
			if _, err := parseFlags([]string{"--pprof-bind-address=" + address}, io.Discard); err != nil {
				t.Errorf("%s: %v", address, err)
			}
		}
	})
	t.Run("rejects stray arguments", func(t *testing.T) {
		if _, err := parseFlags([]string{"serve"}, io.Discard); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
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

func TestTheCommandLineExplainsItself(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(broken, []byte("apiVersion: daemonset-guard.io/v1alpha1\nkind: Policy\nrules: {targets-node: {action: deny}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring of standard output
		stderr string // substring of standard error
	}{
		{name: "lists every subcommand with one line under --help", args: []string{"--help"}, code: exitAdmitted,
			stderr: "Commands:\n  run    serve the mutating and validating webhooks (the default when no subcommand is given)\n  check  "},
		{name: "documents the exit codes under --help", args: []string{"--help"}, code: exitAdmitted, stderr: "Exit codes: 0 admitted"},
		{name: "lists the subcommands under help", args: []string{"help"}, code: exitAdmitted, stdout: "  rules  the rules a policy may name"},
		{name: "refuses an unknown subcommand, listing the real ones", args: []string{"serve"}, code: exitUsage, stderr: "daemonset-guard: unknown command \"serve\"\n\ndaemonset-guard makes"},
		{name: "refuses a bad flag of run", args: []string{"run", "--cert-mode=magic"}, code: exitUsage, stderr: `daemonset-guard run: --cert-mode must be "files" or "self-managed"`},
		{name: "refuses a bad flag without a subcommand, as run", args: []string{"--port=1"}, code: exitUsage, stderr: "flag provided but not defined: -port"},
		{name: "prints the catalogue", args: []string{"rules"}, code: exitAdmitted, stdout: "targets-nodes              validating  warn     warn    the DaemonSet runs on at least one node"},
		{name: "shows the policy's action beside the default", args: []string{"rules", "--policy-file", readmePolicy}, code: exitAdmitted, stdout: "targets-nodes              validating  warn     deny"},
		{name: "prints the policy file's JSON Schema", args: []string{"rules", "-o", "schema"}, code: exitAdmitted, stdout: `"const": "daemonset-guard.io/v1alpha1"`},
		{name: "refuses an unknown output format of rules", args: []string{"rules", "-o", "xml"}, code: exitUsage, stderr: `-o must be text, json or schema, not "xml"`},
		{name: "refuses an invalid policy, naming the unknown rule", args: []string{"rules", "--policy-file", broken}, code: exitUsage, stderr: `rules.targets-node: Unsupported value: "targets-node"`},
		{name: "refuses an invalid policy in check", args: []string{"check", "-f", "-", "--policy-file", broken}, code: exitUsage, stderr: `rules.targets-node: Unsupported value`},
		{name: "refuses an invalid policy in audit", args: []string{"audit", "--policy-file", broken}, code: exitUsage, stderr: `rules.targets-node: Unsupported value`},
		{name: "refuses stray arguments of audit", args: []string{"audit", "extra"}, code: exitUsage, stderr: "unexpected arguments [extra]"},
		{name: "shows a subcommand's flags under --help and succeeds", args: []string{"check", "--help"}, code: exitAdmitted, stderr: "-live-objects string"},
		{name: "refuses an unknown flag of a subcommand", args: []string{"rules", "--bogus"}, code: exitUsage, stderr: "flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if code := dispatch(tt.args, strings.NewReader(""), &stdout, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestRulesPrintsTheCatalogueForTools(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := dispatch([]string{"rules", "-o", "json"}, nil, &stdout, &stderr); code != exitAdmitted {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	var catalog RuleCatalog
	if err := json.Unmarshal([]byte(stdout.String()), &catalog); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range catalog.Rules {
		names = append(names, r.Name)
		if r.Description == "" || r.Config == nil || r.Config.Action != r.Default {
			t.Errorf("rule %s: description %q, config %+v; want a description and the built-in policy's default action", r.Name, r.Description, r.Config)
		}
	}
	if want := rules.Builtin().Names(); !slices.Equal(names, want) {
		t.Errorf("rules -o json lists %v, want the catalog's %v", names, want)
	}
	if !strings.Contains(stdout.String(), `"maxUnavailable": "50%"`) {
		t.Errorf("rollout-budget's default options are missing from %s", stdout.String())
	}
}
