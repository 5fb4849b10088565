// Command daemonset-guard serves the daemonset-guard admission webhooks, and
// gives their answers offline. Run it with --help for its subcommands.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/daemonset-guard/daemonset-guard/webhook/policy"
	"github.com/daemonset-guard/daemonset-guard/webhook/reports"
	"github.com/daemonset-guard/daemonset-guard/webhook/rules"
)

// Exit codes of every subcommand.
const (
	// exitAdmitted: everything judged would be admitted (for run and
	// rules: success).
	exitAdmitted = 0
	// exitDenied: something would be denied (for run: the webhook stopped
	// on an error).
	exitDenied = 1
	// exitUsage: bad flags or arguments, unreadable or malformed input
	// files, an invalid policy.
	exitUsage = 2
	// exitUnevaluated: nothing would be denied, but the cluster could not
	// be reached, or some DaemonSet or some rule could not be evaluated, so
	// the answer is incomplete.
	exitUnevaluated = 3
)

// unreachableError is a cluster that could not be asked: the answer is
// incomplete rather than wrong, so the command exits with exitUnevaluated.
type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }
func (e unreachableError) Unwrap() error { return e.err }

// failure reports why a command stopped and returns its exit code.
func failure(stderr io.Writer, command string, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitAdmitted
	case errors.Is(err, errFlags):
		return exitUsage
	}
	fmt.Fprintf(stderr, "daemonset-guard %s: %v\n", command, err)
	if errors.As(err, new(unreachableError)) {
		return exitUnevaluated
	}
	return exitUsage
}

// errFlags is a flag the flag package refused; it has said why already.
var errFlags = errors.New("bad flags")

// offlineFlags are the flags that check, audit and rules share.
type offlineFlags struct {
	policyFile, output string
	formats            []string
}

// bind defines --policy-file and -o, whose first format is the default.
func (o *offlineFlags) bind(fs *flag.FlagSet, formats ...string) {
	o.formats = formats
	fs.StringVar(&o.policyFile, "policy-file", "", "Policy to apply; empty uses the built-in policy.")
	fs.StringVar(&o.output, "o", formats[0], "Output format: "+orList(formats)+".")
}

// parse parses args, refuses an output format the subcommand does not
// write and arguments no flag took, and loads the policy against the
// built-in rules.
func (o *offlineFlags) parse(fs *flag.FlagSet, args []string) (*rules.Catalog, *policy.Policy, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, errFlags
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if !slices.Contains(o.formats, o.output) {
		return nil, nil, fmt.Errorf("-o must be %s, not %q", orList(o.formats), o.output)
	}
	catalog := rules.Builtin()
	if o.policyFile == "" {
		return catalog, policy.Default(catalog), nil
	}
	pol, err := policy.Load(o.policyFile, catalog)
	return catalog, pol, err
}

func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// reportFormatFlag defines --report-format, which audit and the webhook
// share.
func reportFormatFlag(fs *flag.FlagSet, format *reports.Format) {
	*format = reports.OpenReports
	names := make([]string, len(reports.Formats))
	for i, f := range reports.Formats {
		names[i] = string(f)
	}
	fs.Func("report-format", "The API reports are written in: openreports (openreports.io/v1alpha1 Report, the default) or policyreport (wgpolicyk8s.io/v1alpha2 PolicyReport, for clusters still on it).", func(v string) error {
		if !slices.Contains(reports.Formats, reports.Format(v)) {
			return fmt.Errorf("must be %s", orList(names))
		}
		*format = reports.Format(v)
		return nil
	})
}

// writeJSON writes a report as indented JSON.
func writeJSON(w io.Writer, report any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

// writeYAML writes a report as YAML.
func writeYAML(w io.Writer, report any) error {
	data, err := yaml.Marshal(report)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// command is one subcommand.
type command struct {
	name, summary string
	run           func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands returns the subcommands in the order --help lists them.
func commands() []command {
	return []command{
		{"run", "serve the mutating and validating webhooks (the default when no subcommand is given)", runServe},
		{"check", "what admission would do to DaemonSet files, without a cluster or against one's nodes", runCheck},
		{"audit", "what admission would say of a cluster's DaemonSets today, and how they run", runAudit},
		{"rules", "the rules a policy may name, with their kind, default action and summary", runRules},
	}
}

func main() {
	args := os.Args[1:]
	// As the kubectl plugin kubectl-daemonset_guard (the same binary), no
	// subcommand asks for help: serving the webhooks is the Deployment's.
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") && (len(args) == 0 || strings.HasPrefix(args[0], "-")) {
		args = []string{"help"}
	}
	os.Exit(dispatch(args, os.Stdin, os.Stdout, os.Stderr))
}

// dispatch runs the subcommand that args name, run when they name none.
func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		overview(stdout)
		return exitAdmitted
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args, stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "daemonset-guard: unknown command %q\n\n", name)
	overview(stderr)
	return exitUsage
}

// overview prints the subcommands and the exit codes.
func overview(w io.Writer) {
	var b strings.Builder
	b.WriteString("daemonset-guard makes DaemonSets safe to create, update and roll out.\n\n" +
		"Usage: daemonset-guard [command] [flags]\n       kubectl daemonset-guard command [flags]   (installed as the plugin kubectl-daemonset_guard)\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-6s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun daemonset-guard COMMAND --help for a command's flags.\n\n" +
		"Exit codes: 0 admitted (or success), 1 denied (run: stopped on an error), 2 usage or input error (bad flags,\n" +
		"unreadable or malformed files, an invalid policy), 3 could not evaluate (the cluster unreachable, or a rule error\n" +
		"for some DaemonSet).\n")
	_, _ = io.WriteString(w, b.String())
}

// runServe serves the webhooks until a signal stops them.
func runServe(args []string, _ io.Reader, _, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitAdmitted
	}
	if err != nil {
		fmt.Fprintln(stderr, "daemonset-guard run:", err)
		return exitUsage
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&cfg.zap)))
	if err := run(ctrl.SetupSignalHandler(), cfg); err != nil {
		ctrl.Log.Error(err, "daemonset-guard stopped")
		return exitDenied
	}
	return exitAdmitted
}

// config is everything the command line sets.
type config struct {
	webhookPort            int
	webhookCertDir         string
	healthProbeBindAddress string
	metricsBindAddress     string
	metricsSecure          bool
	pprofBindAddress       string
	policyFile             string
	kubeconfig             string
	enableHTTP2            bool
	clientCAFile           string
	clientCAAllowedNames   []string
	certMode               string
	certSecret             string
	webhookService         string
	webhookConfiguration   string
	registerWebhooks       bool
	leaderElect            bool
	leaderElectionNS       string
	auditInterval          time.Duration
	reportFormat           reports.Format
	zap                    zap.Options
}

// loopbackOnly accepts an address only this host can reach, or 0 (off).
func loopbackOnly(address string) error {
	if address == "0" || address == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q is not a loopback address: the profiler serves request contents, so it listens on 127.0.0.1, [::1] or localhost only", address)
	}
	return nil
}

// Certificate modes.
const (
	certModeFiles       = "files"
	certModeSelfManaged = "self-managed"
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("daemonset-guard run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		overview(stderr)
		fmt.Fprintln(stderr, "\nFlags of run:")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.webhookPort, "webhook-port", 9443, "Port the webhook server listens on.")
	fs.StringVar(&cfg.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory holding the serving certificate tls.crt and its key tls.key; both are reloaded when they change.")
	fs.StringVar(&cfg.healthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.StringVar(&cfg.metricsBindAddress, "metrics-bind-address", ":8443", "Address of the Prometheus /metrics endpoint; 0 disables it.")
	fs.BoolVar(&cfg.metricsSecure, "metrics-secure", true, "Serve /metrics over HTTPS with the serving certificate, only to callers whose bearer token the API server authenticates and authorizes for get on the /metrics URL. false serves plain HTTP to anyone who can reach the port.")
	fs.StringVar(&cfg.pprofBindAddress, "pprof-bind-address", "0", "Loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT) of the Go profiler's /debug/pprof endpoints; 0 disables them. Profiles reveal request contents, so no other address is accepted.")
	fs.StringVar(&cfg.policyFile, "policy-file", "", "Policy file, watched and reloaded on change; empty uses the built-in policy.")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "Kubeconfig to reach the API server; empty uses $KUBECONFIG, then the in-cluster configuration.")
	fs.BoolVar(&cfg.enableHTTP2, "enable-http2", false, "Serve HTTP/2 as well as HTTP/1.1. Off by default: the API server speaks HTTP/1.1 to webhooks, and HTTP/2 has carried denial-of-service flaws (CVE-2023-44487).")
	fs.StringVar(&cfg.clientCAFile, "client-ca-file", "", "Require callers to present a client certificate signed by a CA in this PEM file (mutual TLS), so that only the API server can call the webhooks.")
	fs.Func("client-ca-allowed-names", "With --client-ca-file: comma-separated names; a client certificate is accepted only when its common name or one of its DNS names is listed, as the API server's --requestheader-allowed-names does. Empty accepts every certificate the client CA signed.", func(v string) error {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				cfg.clientCAAllowedNames = append(cfg.clientCAAllowedNames, n)
			}
		}
		return nil
	})
	fs.StringVar(&cfg.certMode, "cert-mode", certModeFiles, `Where the serving certificate comes from: "files" (--webhook-cert-dir, e.g. a Secret written by cert-manager) or "self-managed" (the webhook issues and renews it, keeping it in --cert-secret).`)
	fs.StringVar(&cfg.certSecret, "cert-secret", "daemonset-guard-system/daemonset-guard-tls", "Self-managed mode: namespace/name of the Secret that holds the CA and the serving certificate.")
	fs.StringVar(&cfg.webhookService, "webhook-service", "daemonset-guard-system/daemonset-guard", "namespace/name of the Service the API server calls: the registered webhooks point at it, and self-managed certificates are issued for its DNS names.")
	fs.StringVar(&cfg.webhookConfiguration, "webhook-configuration", "daemonset-guard", "With --register-webhooks: name of the mutating and validating webhook configurations to fill in.")
	fs.BoolVar(&cfg.registerWebhooks, "register-webhooks", false, "Once this replica is ready, write the webhooks (rules, --webhook-service, CA bundle) into the two webhook configurations, which the manifests ship empty, and keep them there. Until then nothing is intercepted, so a webhook that never starts cannot block DaemonSet writes.")
	fs.BoolVar(&cfg.leaderElect, "leader-elect", false, "Elect one leader among the replicas (a Lease named daemonset-guard) to re-evaluate DaemonSets when nodes change and report what a change did to them as Events. Every replica serves the webhooks either way; without it, every replica reports.")
	fs.StringVar(&cfg.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease; empty is the pod's own namespace, which a webhook run outside the cluster does not have.")
	fs.DurationVar(&cfg.auditInterval, "audit-interval", 0, "Write every DaemonSet's report from the leader on this interval (as audit --write-reports does; the CRDs of --report-format must be installed); 0 writes none.")
	reportFormatFlag(fs, &cfg.reportFormat)
	cfg.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := loopbackOnly(cfg.pprofBindAddress); err != nil {
		return config{}, fmt.Errorf("--pprof-bind-address: %w", err)
	}
	if len(cfg.clientCAAllowedNames) > 0 && cfg.clientCAFile == "" {
		return config{}, errors.New("--client-ca-allowed-names needs --client-ca-file: without a client CA no client certificate is asked for")
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
