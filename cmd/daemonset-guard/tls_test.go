package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/daemonset-guard/daemonset-guard/certs"
)

// startServer serves a trivial handler with run()'s TLS setup and a
// certificate watcher on dir, as the webhook does.
func startServer(t *testing.T, dir string, enableHTTP2 bool, clientCAFile string, allowedNames ...string) (addr string) {
	t.Helper()
	watcher, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clientCAs *dynamiccertificates.DynamicFileCAContent
	if clientCAFile != "" {
		if clientCAs, err = dynamiccertificates.NewDynamicCAContentFromFile("client-ca", clientCAFile); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { clientCAs.Run(ctx, 1) })
	}
	server := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, TLSOpts: servingTLS(watcher, enableHTTP2, clientCAs, allowedNames)})
	server.Register("/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	wg.Go(func() {
		if err := watcher.Start(ctx); err != nil {
			t.Errorf("certificate watcher: %v", err)
		}
	})
	wg.Go(func() {
		if err := server.Start(ctx); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	NewWithT(t).Eventually(func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}, 10*time.Second, 20*time.Millisecond).Should(Succeed(), "the server should listen")
	return addr
}

func issue(t *testing.T, ca *certs.KeyPair, dir string) *certs.KeyPair {
	t.Helper()
	serving, err := ca.Serving([]string{"localhost"}, []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return serving
}

func TestCertificateRotationUnderLoadFailsNoRequest(t *testing.T) {
	g := NewWithT(t)
	ca, err := certs.NewCA("test-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	first := issue(t, ca, dir)
	addr := startServer(t, dir, false, "")

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	// A new connection for every request, so each one is a fresh handshake
	// that must find a whole, valid certificate.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "localhost"},
	}}
	serialSeen := func() (string, error) {
		resp, err := client.Get("https://" + addr + "/ping")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return "", fmt.Errorf("status %s", resp.Status)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.String(), nil
	}

	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var load sync.WaitGroup
	for range 8 {
		load.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				requests.Add(1)
				if _, err := serialSeen(); err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}

	// Let the load run on the first certificate, then rotate three times.
	g.Eventually(requests.Load, 10*time.Second, 10*time.Millisecond).Should(BeNumerically(">", 50))
	var last *certs.KeyPair
	for range 3 {
		last = issue(t, ca, dir)
		rotated := requests.Load()
		g.Eventually(requests.Load, 10*time.Second, 10*time.Millisecond).Should(BeNumerically(">", rotated+50), "requests go on after a rotation")
	}
	g.Eventually(serialSeen, 15*time.Second, 50*time.Millisecond).Should(Equal(last.Cert.SerialNumber.String()),
		"new connections should see the newest certificate")
	close(stop)
	load.Wait()
	g.Expect(failures.Load()).To(BeZero(), "failed requests out of %d, the first: %v", requests.Load(), firstFailure.Load())
	g.Expect(last.Cert.SerialNumber).NotTo(Equal(first.Cert.SerialNumber))
}

func TestServingTLSRefusesOldTLSAndHTTP2ByDefault(t *testing.T) {
	g := NewWithT(t)
	ca, err := certs.NewCA("test-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	issue(t, ca, dir)
	addr := startServer(t, dir, false, "")

	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	g.Expect(err).To(HaveOccurred(), "TLS 1.1 must be refused")

	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	g.Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	g.Expect(conn.ConnectionState().NegotiatedProtocol).To(Equal("http/1.1"), "HTTP/2 is off unless --enable-http2")
}

func TestClientCAFileAdmitsOnlyCallersItSignedAndReloads(t *testing.T) {
	g := NewWithT(t)
	ca, err := certs.NewCA("serving-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	issue(t, ca, dir)
	apiServerCA, err := certs.NewCA("api-server-client-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	caFile := filepath.Join(dir, "client-ca.crt")
	g.Expect(os.WriteFile(caFile, apiServerCA.CertPEM, 0o600)).To(Succeed())
	addr := startServer(t, dir, false, caFile)
	get := clientGet(ca, addr)
	g.Expect(get(nil)).To(HaveOccurred(), "a caller without a client certificate is refused")
	// controller-runtime's readiness check dials without a client certificate
	// and only completes a handshake; under TLS 1.3 the server checks the
	// client's certificate after that, so /readyz still works with mTLS.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	g.Expect(err).NotTo(HaveOccurred(), "the readiness check's handshake")
	g.Expect(conn.Close()).To(Succeed())
	stranger, err := certs.NewCA("stranger", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	strangerClient, err := stranger.Client("intruder", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get(strangerClient)).To(HaveOccurred(), "a certificate from another CA is refused")
	apiServer, err := apiServerCA.Client("kube-apiserver", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get(apiServer)).To(Succeed(), "the API server's client certificate is admitted")

	// The client CA is rotated: the new CA's clients are admitted and the
	// old one's refused, without a restart. Garbage in the file changes
	// nothing.
	g.Expect(os.WriteFile(caFile, []byte("not PEM"), 0o600)).To(Succeed())
	g.Consistently(func() error { return get(apiServer) }, 2*time.Second, 200*time.Millisecond).Should(Succeed(), "a broken client CA file leaves the last good CA in force")
	g.Expect(os.WriteFile(caFile, stranger.CertPEM, 0o600)).To(Succeed())
	g.Eventually(func() error { return get(strangerClient) }, 30*time.Second, 200*time.Millisecond).Should(Succeed(), "the rotated client CA is in force")
	g.Expect(get(apiServer)).To(HaveOccurred(), "the previous client CA no longer is")
}

func TestClientCAAllowedNamesAdmitOnlyTheNamedPeer(t *testing.T) {
	g := NewWithT(t)
	ca, err := certs.NewCA("serving-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	issue(t, ca, dir)
	// One CA signs the API server's client certificate and a kubelet's, as a
	// cluster CA does.
	clusterCA, err := certs.NewCA("cluster-ca", time.Now(), time.Hour)
	g.Expect(err).NotTo(HaveOccurred())
	caFile := filepath.Join(dir, "client-ca.crt")
	g.Expect(os.WriteFile(caFile, clusterCA.CertPEM, 0o600)).To(Succeed())
	addr := startServer(t, dir, false, caFile, "kube-apiserver", "apiserver.example.com")
	get := clientGet(ca, addr)
	for _, tt := range []struct {
		name     string
		cn       string
		dnsNames []string
		admitted bool
	}{
		{"admits the listed common name", "kube-apiserver", nil, true},
		{"admits a listed DNS name", "front", []string{"other.example.com", "apiserver.example.com"}, true},
		{"refuses a kubelet's certificate from the same CA", "system:node:worker-1", nil, false},
		{"refuses a name that only contains a listed one", "kube-apiserver-proxy", []string{"apiserver.example.com.evil"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, err := clusterCA.Client(tt.cn, time.Now(), time.Hour, tt.dnsNames...)
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			if err := get(client); (err == nil) != tt.admitted {
				t.Errorf("admitted = %v (%v), want %v", err == nil, err, tt.admitted)
			}
		})
	}
}

// clientGet returns a function that calls /ping on addr, trusting the
// serving CA, with the client certificate given, if any.
func clientGet(servingCA *certs.KeyPair, addr string) func(clientCert *certs.KeyPair) error {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(servingCA.CertPEM)
	return func(clientCert *certs.KeyPair) error {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if clientCert != nil {
			pair, err := tls.X509KeyPair(clientCert.CertPEM, clientCert.KeyPEM)
			if err != nil {
				return err
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := client.Get("https://" + addr + "/ping")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
}

func TestClientCAFileMustHoldACertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.NewCA("serving-ca", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue(t, ca, dir)
	// run stops at the client CA, before it would reach this API server.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	caFile := filepath.Join(dir, "ca.crt")
	for file, content := range map[string]string{
		kubeconfig: "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n",
		caFile:     "not PEM",
	} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	err = run(context.Background(), config{kubeconfig: kubeconfig, webhookCertDir: dir, clientCAFile: caFile})
	if err == nil || !strings.Contains(err.Error(), "loading --client-ca-file") {
		t.Errorf("error = %v", err)
	}
}
