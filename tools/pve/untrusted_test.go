package pve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for 127.0.0.1, like a cluster's own CA (pve-root-ca).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// serve starts a TLS server on 127.0.0.1 with a leaf for ip signed by the CA.
func (ca *testCA) serve(t *testing.T, ip string, h http.Handler) (*httptest.Server, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pve"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, leaf
}

func writeCAFile(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Without a pin, an untrusted certificate is reported with its fingerprint and
// the variable that pins it, as the wrong-pin case reports what was presented.
func TestUntrustedCertificateNamesFingerprintAndVariable(t *testing.T) {
	selfSigned := httptest.NewTLSServer(newSim())
	t.Cleanup(selfSigned.Close)
	clusterCA := newTestCA(t, "Proxmox Virtual Environment")
	byClusterCA, leaf := clusterCA.serve(t, "127.0.0.1", newSim())
	otherCA := newTestCA(t, "someone else")
	wrongHost, wrongHostLeaf := clusterCA.serve(t, "127.0.0.2", newSim())

	for _, c := range []struct {
		name        string
		url         string
		fingerprint string
		caFile      string
		why         string
		trust       string
	}{
		{"self-signed, no pin, no CA", selfSigned.URL, FingerprintOf(selfSigned.Certificate()), "", "(self-signed)", "is not trusted"},
		{"signed by the cluster's CA, no pin, no CA", byClusterCA.URL, FingerprintOf(leaf), "", "unknown authority", "is not trusted"},
		{"CA file of another CA", byClusterCA.URL, FingerprintOf(leaf), writeCAFile(t, otherCA.cert), "unknown authority", "is not trusted by PVE_CA_FILE"},
		{"right CA, other host name", wrongHost.URL, FingerprintOf(wrongHostLeaf), writeCAFile(t, clusterCA.cert), "another host name", "is not trusted by PVE_CA_FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := New(Config{Endpoints: []Endpoint{{Name: "pve", URL: c.url}}, TokenID: testTokenID, TokenSecret: testSecret,
				CAFile: c.caFile, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.CloseIdleConnections)
			err = cl.Ping(context.Background())
			var untrusted *UntrustedCertificateError
			if !errors.As(err, &untrusted) {
				t.Fatalf("Ping = %v, want an UntrustedCertificateError", err)
			}
			if untrusted.Fingerprint != c.fingerprint || untrusted.URL != c.url {
				t.Errorf("fingerprint %s at %s, want %s at %s", untrusted.Fingerprint, untrusted.URL, c.fingerprint, c.url)
			}
			msg := err.Error()
			for _, want := range []string{"the Proxmox API at " + c.url + " presented a certificate that " + c.trust,
				c.why, "set PVE_TLS_FINGERPRINT=" + c.fingerprint} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q\nlacks %q", msg, want)
				}
			}
			// Still an unreachable endpoint, and a request that never left:
			// failover and write safety treat it as before.
			var certErr *tls.CertificateVerificationError
			if !IsUnreachable(err) || !errors.As(err, &certErr) || !notSent(untrusted) {
				t.Errorf("error %v: unreachable %t, wraps the verification error %t, not sent %t",
					err, IsUnreachable(err), errors.As(err, &certErr), notSent(untrusted))
			}
			// Pinning the fingerprint it printed is the fix.
			pinned, err := New(Config{Endpoints: []Endpoint{{Name: "pve", URL: c.url}}, TokenID: testTokenID, TokenSecret: testSecret,
				Fingerprint: untrusted.Fingerprint})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pinned.CloseIdleConnections)
			if err := pinned.Ping(context.Background()); err != nil {
				t.Errorf("pinned to the printed fingerprint: %v", err)
			}
		})
	}
}

// PVE's error text reaches logs, /api/health and the console: a proxy that echoes
// the Authorization header must not put the token secret there.
func TestAPIErrorsNeverCarryTheTokenSecret(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"data":null,"message":"bad credentials: ` + r.Header.Get("Authorization") + `",` +
			`"errors":{"token":"` + r.Header.Get("Authorization") + `"}}`))
	}))
	t.Cleanup(echo.Close)
	err := newClient(t, testTokenID, testSecret, echo.URL).Ping(context.Background())
	if !IsUnauthorized(err) {
		t.Fatalf("Ping = %v, want a 401", err)
	}
	if msg := err.Error(); strings.Contains(msg, testSecret) || !strings.Contains(msg, testTokenID+"=[redacted]") {
		t.Fatalf("error %q carries the secret or lost the redaction mark", msg)
	}
}
