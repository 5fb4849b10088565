// Package certs makes and stores the webhook's TLS certificates with
// cert-manager's pki package, from the same Certificate specs that
// cert-manager itself would be given.
package certs

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/util/pki"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KeyPair is a certificate with its private key, parsed and PEM-encoded.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA returns a self-signed CA certificate valid from notBefore for validity.
func NewCA(commonName string, notBefore time.Time, validity time.Duration) (*KeyPair, error) {
	s := spec(commonName, validity, cmapi.UsageCertSign, cmapi.UsageDigitalSignature)
	s.IsCA = true
	return issue(s, nil, notBefore)
}

// Serving returns a TLS server certificate for the DNS names and IP addresses,
// signed by the CA, valid from notBefore for validity.
func (ca *KeyPair) Serving(dnsNames, ipAddresses []string, notBefore time.Time, validity time.Duration) (*KeyPair, error) {
	commonName := ""
	if names := append(slices.Clone(dnsNames), ipAddresses...); len(names) > 0 {
		commonName = names[0]
	}
	s := spec(commonName, validity, cmapi.UsageServerAuth, cmapi.UsageDigitalSignature)
	s.DNSNames, s.IPAddresses = dnsNames, ipAddresses
	return issue(s, ca, notBefore)
}

// Client returns a TLS client certificate for commonName and the DNS names,
// signed by the CA, valid from notBefore for validity: for mutual TLS
// between the API server and the webhook.
func (ca *KeyPair) Client(commonName string, notBefore time.Time, validity time.Duration, dnsNames ...string) (*KeyPair, error) {
	s := spec(commonName, validity, cmapi.UsageClientAuth, cmapi.UsageDigitalSignature)
	s.DNSNames = dnsNames
	return issue(s, ca, notBefore)
}

// spec is a Certificate spec with an ECDSA P-256 key, as cert-manager would
// be given for daemonset-guard.
func spec(commonName string, validity time.Duration, usages ...cmapi.KeyUsage) *cmapi.CertificateSpec {
	return &cmapi.CertificateSpec{
		CommonName: commonName,
		Duration:   &metav1.Duration{Duration: validity},
		Usages:     usages,
		PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
	}
}

// issue creates a key and a certificate for spec, signed by issuer, or
// self-signed when issuer is nil, valid from notBefore for spec's duration.
func issue(spec *cmapi.CertificateSpec, issuer *KeyPair, notBefore time.Time) (*KeyPair, error) {
	crt := &cmapi.Certificate{Spec: *spec}
	key, err := pki.GeneratePrivateKeyForCertificate(crt)
	if err != nil {
		return nil, fmt.Errorf("generating a private key: %w", err)
	}
	template, err := pki.CertificateTemplateFromCertificate(crt)
	if err != nil {
		return nil, fmt.Errorf("building the certificate template: %w", err)
	}
	// The template starts now by the wall clock; the caller's clock decides.
	template.NotBefore, template.NotAfter = notBefore, notBefore.Add(spec.Duration.Duration)
	issuerCert, signer := template, key
	if issuer != nil {
		issuerCert, signer = issuer.Cert, issuer.Key
	}
	certPEM, cert, err := pki.SignCertificate(template, issuerCert, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate: %w", err)
	}
	keyPEM, err := pki.EncodePrivateKey(key, cmapi.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// WriteFiles writes tls.crt and tls.key into dir, each by rename so that a
// watcher never reads half a file. The key is written first: a reader that
// sees the new certificate finds its key already in place.
func (kp *KeyPair) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"tls.key", kp.KeyPEM}, {"tls.crt", kp.CertPEM}} {
		tmp, err := os.CreateTemp(dir, "."+f.name+"-*")
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
		if err := os.Rename(tmp.Name(), filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}
