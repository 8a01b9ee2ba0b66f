package fetch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
)

// testCA makes a CA and a server certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) (serverCert tls.Certificate, caPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ftp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// Explicit FTPS: AUTH TLS with the certificate checked against the
// configured CA file; an untrusted certificate is refused with a hint.
func TestExplicitFTPS(t *testing.T) {
	cert, caPEM := testCA(t)
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "exports"), 0o755)
	os.WriteFile(filepath.Join(root, "exports", "r.csv"), []byte("a;b\n1;2\n"), 0o644)
	srv, err := ftpd.Start(ftpd.Options{Root: root, User: ftpUser, Password: ftpPass,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	pool, err := LoadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := FTPConfig{Host: srv.Host(), Port: srv.Port(), User: ftpUser, Password: ftpPass, Folder: "exports",
		Timeout: 5 * time.Second, TLS: true, RootCAs: pool}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	f, err := OpenFTP(ctx, cfg, "r.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(got) != "a;b\n1;2\n" {
		t.Fatalf("got %q, %v", got, err)
	}

	// The system roots do not know the test CA.
	cfg.RootCAs = x509.NewCertPool()
	_, err = OpenFTP(ctx, cfg, "r.csv")
	if err == nil || !strings.Contains(err.Error(), "ftp.ca_file") || strings.Contains(err.Error(), ftpPass) {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
}
