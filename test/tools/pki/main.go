// Command pki writes the certificates, keys and kubeconfigs of Berth's test control plane
// (test/env/controlplane.sh) into one folder. Standard library only.
//
//	pki -dir DIR -node NAME [-node-ip IP,...] [-server https://127.0.0.1:6443] [-service-ip 10.96.0.1]
//
// It is idempotent: a certificate or key already in DIR is kept while it still fits (signed by
// the CA in DIR, same subject and SANs, valid for at least 7 more days, matching its key), and
// rewritten otherwise; a new CA rewrites every certificate. The kubeconfigs are rewritten every
// time (their server URL may change).
//
// Files (keys are mode 0600):
//
//	ca.crt, ca.key                     the test CA (also the client CA and the kubelet CA)
//	apiserver.crt, .key                kube-apiserver serving: localhost, 127.0.0.1, kubernetes.default.svc..., the service IP
//	apiserver-kubelet-client.crt, .key kube-apiserver towards kubelets: CN kube-apiserver-kubelet-client
//	sa.key, sa.pub                     service-account token signing key (RSA 2048) and its public key
//	admin.crt, .key                    CN berth-test-admin, O system:masters
//	node.crt, .key                     CN system:node:NAME, O system:nodes (client)
//	node-serving.crt, .key             the node's serving certificate: NAME, 127.0.0.1, the node IPs
//	admin.kubeconfig, node.kubeconfig  certificates embedded
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	minRemaining = 7 * 24 * time.Hour
	clusterName  = "berth-test"
)

func main() {
	dir := flag.String("dir", "", "output folder (required)")
	node := flag.String("node", "berth-node", "node name: the node identity system:node:NAME and the serving certificate's DNS name")
	nodeIPs := flag.String("node-ip", "", "node IP address(es), comma-separated, added to the node's serving certificate")
	server := flag.String("server", "https://127.0.0.1:6443", "API server URL written into the kubeconfigs")
	serviceIP := flag.String("service-ip", "10.96.0.1", "ClusterIP of the kubernetes service, added to the API server's certificate")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: pki -dir DIR [-node NAME] [-node-ip IP,...] [-server URL] [-service-ip IP]")
		os.Exit(2)
	}
	if err := run(*dir, *node, *nodeIPs, *server, *serviceIP); err != nil {
		fmt.Fprintf(os.Stderr, "pki: %v\n", err)
		os.Exit(1)
	}
}

func parseIPs(flagName, s string) ([]net.IP, error) {
	var ips []net.IP
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ip := net.ParseIP(f)
		if ip == nil {
			return nil, fmt.Errorf("-%s: %q is not an IP address", flagName, f)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

func run(dir, node, nodeIPFlag, server, serviceIPFlag string) error {
	if node == "" || strings.ToLower(node) != node || strings.ContainsAny(node, " /:") {
		return fmt.Errorf("-node %q: want a lowercase DNS-style node name", node)
	}
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-server %q: want https://HOST:PORT", server)
	}
	nodeIPs, err := parseIPs("node-ip", nodeIPFlag)
	if err != nil {
		return err
	}
	serviceIPs, err := parseIPs("service-ip", serviceIPFlag)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := &pki{dir: dir}

	if err := p.loadOrCreateCA(); err != nil {
		return err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	leaves := []leafSpec{
		{
			file: "apiserver", cn: "kube-apiserver", usage: x509.ExtKeyUsageServerAuth,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			ips: append(slices.Clone(loopback), serviceIPs...),
		},
		{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", usage: x509.ExtKeyUsageClientAuth},
		{file: "admin", cn: "berth-test-admin", org: "system:masters", usage: x509.ExtKeyUsageClientAuth},
		{file: "node", cn: "system:node:" + node, org: "system:nodes", usage: x509.ExtKeyUsageClientAuth},
		{
			file: "node-serving", cn: "system:node:" + node, org: "system:nodes", usage: x509.ExtKeyUsageServerAuth,
			dns: []string{node}, ips: append(slices.Clone(loopback), nodeIPs...),
		},
	}
	for _, l := range leaves {
		if err := p.ensureLeaf(l); err != nil {
			return err
		}
	}
	if err := p.ensureServiceAccountKey(); err != nil {
		return err
	}
	if err := p.writeKubeconfig("admin.kubeconfig", server, "admin", "admin"); err != nil {
		return err
	}
	if err := p.writeKubeconfig("node.kubeconfig", server, "system:node:"+node, "node"); err != nil {
		return err
	}
	if len(p.wrote) > 0 {
		fmt.Fprintf(os.Stderr, "pki: new %s in %s\n", strings.Join(p.wrote, ", "), dir)
	}
	return nil
}

type pki struct {
	dir   string
	ca    *x509.Certificate
	caKey crypto.Signer
	caPEM []byte
	newCA bool
	wrote []string // what was (re)generated, for the report
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

// writeFile writes atomically: a reader never sees half a key.
func (p *pki) writeFile(name string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(p.dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", p.path(name), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p.path(name))
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func keyPEM(key crypto.Signer) ([]byte, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// loadPair reads NAME.crt and NAME.key; the certificate must match the key.
func (p *pki) loadPair(name string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(p.path(name + ".crt"))
	if err != nil {
		return nil, nil, err
	}
	keyPEMBytes, err := os.ReadFile(p.path(name + ".key"))
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEMBytes)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s.key: not a signing key", name)
	}
	return pair.Leaf, signer, nil
}

func (p *pki) loadOrCreateCA() error {
	if cert, key, err := p.loadPair("ca"); err == nil && cert.IsCA && time.Until(cert.NotAfter) > minRemaining {
		p.ca, p.caKey = cert, key
		p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
		return nil
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "berth-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return err
	}
	p.ca, p.caKey, p.newCA = cert, key, true
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := p.writeFile("ca.key", kp, 0o600); err != nil {
		return err
	}
	if err := p.writeFile("ca.crt", p.caPEM, 0o644); err != nil {
		return err
	}
	p.wrote = append(p.wrote, "ca")
	return nil
}

type leafSpec struct {
	file  string
	cn    string
	org   string
	usage x509.ExtKeyUsage
	dns   []string
	ips   []net.IP
}

func (l leafSpec) ipStrings() []string {
	var s []string
	for _, ip := range l.ips {
		s = append(s, ip.String())
	}
	return s
}

func sortedEqual(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// fits tells whether an existing certificate can stay.
func (p *pki) fits(l leafSpec, cert *x509.Certificate) bool {
	if cert.CheckSignatureFrom(p.ca) != nil || time.Until(cert.NotAfter) < minRemaining {
		return false
	}
	if cert.Subject.CommonName != l.cn || !slices.Equal(cert.Subject.Organization, orgs(l.org)) {
		return false
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{l.usage}) {
		return false
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	return sortedEqual(cert.DNSNames, l.dns) && sortedEqual(ips, l.ipStrings())
}

func orgs(org string) []string {
	if org == "" {
		return nil
	}
	return []string{org}
}

func (p *pki) ensureLeaf(l leafSpec) error {
	if !p.newCA {
		if cert, _, err := p.loadPair(l.file); err == nil && p.fits(l, cert) {
			return nil
		}
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: l.cn, Organization: orgs(l.org)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
		DNSNames:     l.dns,
		IPAddresses:  l.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", l.file, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return err
	}
	if err := p.writeFile(l.file+".key", kp, 0o600); err != nil {
		return err
	}
	if err := p.writeFile(l.file+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	p.wrote = append(p.wrote, l.file)
	return nil
}

func (p *pki) ensureServiceAccountKey() error {
	if b, err := os.ReadFile(p.path("sa.key")); err == nil {
		if block, _ := pem.Decode(b); block != nil && block.Type == "RSA PRIVATE KEY" {
			if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
				pub, err := os.ReadFile(p.path("sa.pub"))
				want, err2 := publicPEM(key)
				if err == nil && err2 == nil && bytes.Equal(pub, want) {
					return nil
				}
			}
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return err
	}
	pub, err := publicPEM(key)
	if err != nil {
		return err
	}
	if err := p.writeFile("sa.key", kp, 0o600); err != nil {
		return err
	}
	if err := p.writeFile("sa.pub", pub, 0o644); err != nil {
		return err
	}
	p.wrote = append(p.wrote, "sa")
	return nil
}

func publicPEM(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func (p *pki) writeKubeconfig(name, server, user, pair string) error {
	certPEM, err := os.ReadFile(p.path(pair + ".crt"))
	if err != nil {
		return err
	}
	keyPEMBytes, err := os.ReadFile(p.path(pair + ".key"))
	if err != nil {
		return err
	}
	if len(certPEM) == 0 || len(keyPEMBytes) == 0 {
		return errors.New(pair + ": empty certificate or key")
	}
	b64 := base64.StdEncoding.EncodeToString
	context := user + "@" + clusterName
	// JSON is YAML: quoted strings keep names like system:node:x unambiguous.
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]q
  cluster:
    server: %[2]q
    certificate-authority-data: %[3]s
users:
- name: %[4]q
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: %[7]q
  context:
    cluster: %[1]q
    user: %[4]q
current-context: %[7]q
`, clusterName, server, b64(p.caPEM), user, b64(certPEM), b64(keyPEMBytes), context)
	return p.writeFile(name, []byte(cfg), 0o600)
}
