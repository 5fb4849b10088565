package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServingCertificateIsTrustedThroughItsCA(t *testing.T) {
	ca, err := NewCA("daemonset-guard-ca", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("the CA cannot sign: IsCA=%v usage=%v", ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	serving, err := ca.Serving([]string{"localhost", "daemonset-guard.daemonset-guard-system.svc"}, []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := serving.Cert.NotAfter.Sub(serving.Cert.NotBefore); got < 59*time.Minute || got > 61*time.Minute {
		t.Errorf("the serving certificate is valid for %v, want an hour", got)
	}

	dir := t.TempDir()
	if err := serving.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("tls.key: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatalf("the written files are not a key pair: %v", err)
	}

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("a client that trusts the CA cannot reach the server: %v", err)
	}
	resp.Body.Close()

	other, err := NewCA("another-ca", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	strangers := x509.NewCertPool()
	strangers.AppendCertsFromPEM(other.CertPEM)
	stranger := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: strangers}}}
	if _, err := stranger.Get(srv.URL); err == nil {
		t.Error("a client that trusts another CA reached the server")
	}
}
