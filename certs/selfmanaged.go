package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cert-manager/cert-manager/pkg/util/pki"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/daemonset-guard/daemonset-guard/internal/namedwatch"
)

// Keys of the Secret that holds the self-managed certificates.
const (
	caCertKey         = "ca.crt"
	caKeyKey          = "ca.key"
	previousCACertKey = "ca-previous.crt"
	servingCertKey    = "tls.crt"
	servingKeyKey     = "tls.key"
)

// Default lifetimes of self-managed certificates.
const (
	DefaultCAValidity      = 5 * 365 * 24 * time.Hour
	DefaultServingValidity = 90 * 24 * time.Hour
)

// clockSkew backdates every certificate issued here: an API server whose
// clock trails this replica's by up to this much still accepts a certificate
// issued a moment ago, instead of failing every call (closed) until its
// clock catches up.
const clockSkew = 5 * time.Minute

// recheck bounds the time between two syncs, so that a replica soon serves
// what another replica wrote into the Secret.
const recheck = 10 * time.Minute

// SelfManaged issues and renews the webhook's certificates without
// cert-manager. It keeps the CA and the serving certificate in one Secret,
// so that every replica serves the same certificate; writes the serving pair
// into Dir, where the server's certificate watcher loads it; and offers the
// CA bundle (CABundle) for the webhook configurations.
//
// Replicas need no leader: each reads the Secret, and only a replica that
// finds it missing, invalid or due for renewal writes it, guarded by its
// resourceVersion. A replica that loses that race reads and uses the winner's.
type SelfManaged struct {
	Client kubernetes.Interface
	// Secret names the Secret that holds the certificates.
	Secret types.NamespacedName
	// DNSNames are the names the API server calls the webhook by.
	DNSNames []string
	// Dir receives tls.crt and tls.key.
	Dir string
	// CAValidity and ServingValidity default to DefaultCAValidity and
	// DefaultServingValidity. Each certificate is renewed at two thirds of
	// its life.
	CAValidity, ServingValidity time.Duration
	// Now defaults to time.Now; tests move it forward.
	Now func() time.Time
	Log logr.Logger

	once     sync.Once
	caBundle atomic.Pointer[[]byte]
	// servedCA is the CA of the last Sync: when the Secret loses its CA (it
	// was deleted), the bundle keeps trusting it beside the new one, so
	// that replicas still serving certificates it signed are not cut off.
	servedCA []byte
	// bundleChanged receives when a Sync changes the CA bundle.
	bundleChanged chan struct{}
}

// BundleChanged returns a channel that receives when the CA bundle changes,
// so that the webhook configurations can follow within seconds. One signal
// stands for every change before it.
func (m *SelfManaged) BundleChanged() <-chan struct{} {
	m.init()
	return m.bundleChanged
}

func (m *SelfManaged) init() {
	m.once.Do(func() { m.bundleChanged = make(chan struct{}, 1) })
}

// errLostRace means another replica wrote first; syncing again adopts its write.
var errLostRace = errors.New("another writer updated the object first")

// bundle is what the Secret holds.
type bundle struct {
	ca, serving *KeyPair
	previousCA  []byte
}

// Start keeps the certificates valid until ctx is done: it syncs whenever
// the Secret changes or goes away, at each renewal time and at least every
// ten minutes, retrying failures with backoff. It implements
// controller-runtime's manager.Runnable.
func (m *SelfManaged) Start(ctx context.Context) error {
	// Another replica's renewal, a broken edit or a deletion of the Secret
	// is seen within seconds, not at the next recheck.
	secretChanged := namedwatch.Changes(ctx, m.Client.CoreV1().RESTClient(), "secrets", m.Secret.Namespace, m.Secret.Name, &corev1.Secret{})
	backoff := time.Second
	for {
		next, err := m.Sync(ctx)
		wait := time.Until(next)
		if err != nil {
			m.Log.Error(err, "syncing the self-managed certificates; retrying", "in", backoff)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(wait, 0)):
		case <-secretChanged:
		}
	}
}

// SyncUntilValid syncs until it succeeds or ctx ends, so that the server has
// a certificate to load when it starts.
func (m *SelfManaged) SyncUntilValid(ctx context.Context) error {
	for {
		_, err := m.Sync(ctx)
		if err == nil {
			return nil
		}
		m.Log.Error(err, "waiting for a valid self-managed certificate")
		select {
		case <-ctx.Done():
			return fmt.Errorf("no valid self-managed certificate: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// Sync makes the Secret and the files in Dir hold valid certificates, and
// returns when it should run again.
func (m *SelfManaged) Sync(ctx context.Context) (time.Time, error) {
	now := m.now()
	b, err := m.ensureSecret(ctx, now)
	for attempt := 0; errors.Is(err, errLostRace) && attempt < 3; attempt++ {
		m.Log.Info("another replica renewed the certificates first; using theirs")
		b, err = m.ensureSecret(ctx, now)
	}
	if err != nil {
		return time.Time{}, err
	}
	if err := m.writeFiles(b.serving); err != nil {
		return time.Time{}, err
	}
	bundle := caBundle(b, now)
	if old := m.caBundle.Swap(&bundle); old == nil || !bytes.Equal(*old, bundle) {
		m.init()
		select {
		case m.bundleChanged <- struct{}{}:
		default:
		}
	}
	m.servedCA = b.ca.CertPEM
	next := now.Add(recheck)
	for _, t := range []time.Time{renewalTime(b.serving.Cert), renewalTime(b.ca.Cert)} {
		if t.Before(next) {
			next = t
		}
	}
	return next, nil
}

func (m *SelfManaged) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// ensureSecret returns the Secret's certificates, first renewing what is
// missing, invalid or due.
func (m *SelfManaged) ensureSecret(ctx context.Context, now time.Time) (*bundle, error) {
	secrets := m.Client.CoreV1().Secrets(m.Secret.Namespace)
	secret, err := secrets.Get(ctx, m.Secret.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: m.Secret.Name, Namespace: m.Secret.Namespace}}
	} else if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", m.Secret, err)
	}

	b := &bundle{previousCA: secret.Data[previousCACertKey]}
	changed := false
	ca, caErr := parsePair(secret.Data[caCertKey], secret.Data[caKeyKey])
	if caErr == nil {
		caErr = checkCA(ca, now)
	}
	if caErr != nil {
		if len(secret.Data) > 0 {
			m.Log.Info("the CA in the Secret is unusable; issuing a new one", "secret", m.Secret.String(), "reason", caErr.Error())
		}
		switch {
		case ca != nil && now.Before(ca.Cert.NotAfter):
			// Keep trusting the CA being replaced until it expires, so that
			// replicas still serving its certificates are not cut off.
			b.previousCA = ca.CertPEM
		case ca == nil && len(m.servedCA) > 0:
			// The Secret lost its CA (deleted, or emptied): the one this
			// replica served with is the one being replaced.
			b.previousCA = m.servedCA
		}
		if ca, err = NewCA("daemonset-guard-ca", now.Add(-clockSkew), orDefault(m.CAValidity, DefaultCAValidity)); err != nil {
			return nil, err
		}
		changed = true
	}
	b.ca = ca

	serving, servingErr := parsePair(secret.Data[servingCertKey], secret.Data[servingKeyKey])
	if servingErr == nil && !changed {
		servingErr = m.checkServing(serving, ca, now)
	}
	if changed || servingErr != nil {
		if !changed && len(secret.Data) > 0 {
			m.Log.Info("the serving certificate in the Secret is unusable; issuing a new one", "secret", m.Secret.String(), "reason", servingErr.Error())
		}
		if serving, err = ca.Serving(m.DNSNames, nil, now.Add(-clockSkew), orDefault(m.ServingValidity, DefaultServingValidity)); err != nil {
			return nil, err
		}
		changed = true
	}
	b.serving = serving
	if !changed {
		return b, nil
	}

	secret.Data = map[string][]byte{
		caCertKey:      ca.CertPEM,
		caKeyKey:       ca.KeyPEM,
		servingCertKey: serving.CertPEM,
		servingKeyKey:  serving.KeyPEM,
	}
	if len(b.previousCA) > 0 {
		secret.Data[previousCACertKey] = b.previousCA
	}
	if secret.ResourceVersion == "" {
		_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	} else {
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{})
	}
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return nil, errLostRace
	case err != nil:
		return nil, fmt.Errorf("writing Secret %s: %w", m.Secret, err)
	}
	m.Log.Info("issued certificates", "secret", m.Secret.String(), "caExpires", ca.Cert.NotAfter, "servingExpires", serving.Cert.NotAfter)
	return b, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// parsePair decodes a PEM certificate and its key and checks they belong together.
func parsePair(certPEM, keyPEM []byte) (*KeyPair, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, errors.New("missing")
	}
	cert, err := pki.DecodeX509CertificateBytes(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := pki.DecodePrivateKeyBytes(keyPEM)
	if err != nil {
		return nil, err
	}
	if ok, err := pki.PublicKeyMatchesCertificate(key.Public(), cert); err != nil || !ok {
		return nil, errors.New("the private key does not match the certificate")
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func checkCA(ca *KeyPair, now time.Time) error {
	if !ca.Cert.IsCA {
		return errors.New("the certificate is not a CA")
	}
	return checkTime(ca.Cert, now)
}

func (m *SelfManaged) checkServing(serving, ca *KeyPair, now time.Time) error {
	if err := serving.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("not signed by the CA: %w", err)
	}
	for _, name := range m.DNSNames {
		if err := serving.Cert.VerifyHostname(name); err != nil {
			return err
		}
	}
	return checkTime(serving.Cert, now)
}

// checkTime fails for a certificate not yet valid or due for renewal.
func checkTime(cert *x509.Certificate, now time.Time) error {
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("not valid before %s", cert.NotBefore)
	}
	if !now.Before(renewalTime(cert)) {
		return fmt.Errorf("due for renewal since %s (expires %s)", renewalTime(cert), cert.NotAfter)
	}
	return nil
}

// renewalTime is two thirds into the certificate's life.
func renewalTime(cert *x509.Certificate) time.Time {
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3)
}

// caBundle is the current CA, followed by the previous one while it is valid.
func caBundle(b *bundle, now time.Time) []byte {
	out := slices.Clone(b.ca.CertPEM)
	if prev, err := pki.DecodeX509CertificateBytes(b.previousCA); err == nil && now.Before(prev.NotAfter) {
		out = append(out, b.previousCA...)
	}
	return out
}

// writeFiles replaces tls.crt and tls.key when they differ from the pair.
func (m *SelfManaged) writeFiles(serving *KeyPair) error {
	current, err := os.ReadFile(filepath.Join(m.Dir, servingCertKey))
	if err == nil && bytes.Equal(current, serving.CertPEM) {
		return nil
	}
	return serving.WriteFiles(m.Dir)
}

// CABundle returns the CA that signs the serving certificate, followed by
// the CA it replaced while that is still valid, as of the last Sync.
func (m *SelfManaged) CABundle() ([]byte, error) {
	b := m.caBundle.Load()
	if b == nil {
		return nil, errors.New("no self-managed certificate has been issued yet")
	}
	return *b, nil
}

// ServingCertificateValid returns a readiness check that fails unless the
// server's current certificate is valid now.
func ServingCertificateValid(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), now func() time.Time) func() error {
	return func() error {
		cert, err := get(nil)
		if err != nil || cert == nil || len(cert.Certificate) == 0 {
			return fmt.Errorf("no serving certificate loaded: %v", err)
		}
		leaf := cert.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return fmt.Errorf("the serving certificate does not parse: %w", err)
			}
		}
		if t := now(); t.Before(leaf.NotBefore) || !t.Before(leaf.NotAfter) {
			return fmt.Errorf("the serving certificate is valid from %s to %s, not now", leaf.NotBefore, leaf.NotAfter)
		}
		return nil
	}
}
