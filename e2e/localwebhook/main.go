// Command localwebhook prepares a webhook that runs on the host for a local
// cluster whose API server also runs on the host: it makes the serving
// certificate, and registers manifests/webhooks.yaml with each service
// reference turned into a URL and the CA as caBundle, so the local cluster
// runs the webhook configuration that ships, not a copy.
//
//	localwebhook certs --dir DIR
//	localwebhook register --kubeconfig FILE --manifest FILE --url https://127.0.0.1:PORT --ca DIR/ca.crt
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/daemonset-guard/daemonset-guard/certs"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localwebhook:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: localwebhook certs|register [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "certs":
		dir := fs.String("dir", "", "directory for ca.crt, tls.crt and tls.key")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return writeCerts(*dir)
	case "register":
		kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster")
		manifest := fs.String("manifest", "manifests/webhooks.yaml", "webhook configurations to register")
		url := fs.String("url", "", "base URL of the webhook server, e.g. https://127.0.0.1:19443")
		caFile := fs.String("ca", "", "CA certificate the API server must trust")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return register(context.Background(), *kubeconfig, *manifest, *url, *caFile)
	}
	return fmt.Errorf("unknown command %q: want certs or register", args[0])
}

// writeCerts makes a CA and a serving certificate for the loopback address,
// valid long enough for a demo that is left running.
func writeCerts(dir string) error {
	if dir == "" {
		return errors.New("--dir is required")
	}
	ca, err := certs.NewCA("daemonset-guard-local-ca", time.Now(), 30*24*time.Hour)
	if err != nil {
		return err
	}
	serving, err := ca.Serving([]string{"localhost"}, []string{"127.0.0.1"}, time.Now(), 30*24*time.Hour)
	if err != nil {
		return err
	}
	if err := serving.WriteFiles(dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o600)
}

func register(ctx context.Context, kubeconfig, manifest, url, caFile string) error {
	if url == "" {
		return errors.New("--url is required")
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("reading --ca: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading --kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("reading --manifest: %w", err)
	}
	toURL := func(cc *admissionregistrationv1.WebhookClientConfig) {
		path := ""
		if cc.Service != nil && cc.Service.Path != nil {
			path = *cc.Service.Path
		}
		u := url + path
		*cc = admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: ca}
	}
	decoder := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var meta metav1.TypeMeta
		var raw runtime.RawExtension
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("decoding %s: %w", manifest, err)
		}
		if err := yaml.Unmarshal(raw.Raw, &meta); err != nil {
			return err
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			obj := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := yaml.Unmarshal(raw.Raw, obj); err != nil {
				return err
			}
			for i := range obj.Webhooks {
				toURL(&obj.Webhooks[i].ClientConfig)
			}
			err = upsert(ctx, client.AdmissionregistrationV1().MutatingWebhookConfigurations(), obj)
		case "ValidatingWebhookConfiguration":
			obj := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := yaml.Unmarshal(raw.Raw, obj); err != nil {
				return err
			}
			for i := range obj.Webhooks {
				toURL(&obj.Webhooks[i].ClientConfig)
			}
			err = upsert(ctx, client.AdmissionregistrationV1().ValidatingWebhookConfigurations(), obj)
		default:
			err = fmt.Errorf("%s holds a %s; only webhook configurations belong there", manifest, meta.Kind)
		}
		if err != nil {
			return err
		}
	}
}

// object is a webhook configuration as its typed client sees it.
type object[T any] interface {
	*T
	metav1.Object
}

// configClient is the part of a typed webhook configuration client upsert uses.
type configClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*T, error)
	Create(ctx context.Context, obj *T, opts metav1.CreateOptions) (*T, error)
	Update(ctx context.Context, obj *T, opts metav1.UpdateOptions) (*T, error)
}

func upsert[T any, P object[T]](ctx context.Context, c configClient[T], obj P) error {
	current, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.Create(ctx, obj, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	obj.SetResourceVersion(P(current).GetResourceVersion())
	_, err = c.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}
