package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// serverTLS loads TLS_CERT_FILE and TLS_KEY_FILE for serving HTTPS, where
// browsers speak HTTP/2 and so share one connection between all the streams
// of an origin; nil when neither is set. A missing, unreadable or
// mismatched pair is a configError that names the file at fault.
func serverTLS(cfg config, log *slog.Logger) (*tls.Config, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	certPEM, err := readPEM(cfg.TLSCertFile, "CERTIFICATE")
	if err != nil {
		return nil, configError{fmt.Errorf("TLS_CERT_FILE: %w", err)}
	}
	keyPEM, err := readPEM(cfg.TLSKeyFile, "PRIVATE KEY")
	if err != nil {
		return nil, configError{fmt.Errorf("TLS_KEY_FILE: %w", err)}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, configError{fmt.Errorf("TLS_CERT_FILE, TLS_KEY_FILE: %s", strings.TrimPrefix(err.Error(), "tls: "))}
	}
	leaf := pair.Leaf
	if leaf == nil { // GODEBUG=x509keypairleaf=0
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, configError{fmt.Errorf("TLS_CERT_FILE: %w", err)}
		}
	}
	log.Info("HTTPS on: HTTP/2 and HTTP/1.1 over TLS", "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		log.Warn("the TLS certificate is not valid now: clients will refuse it",
			"not_before", leaf.NotBefore.UTC().Format(time.RFC3339), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	// ServeTLS adds h2 and http/1.1 to the ALPN protocols.
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// readPEM reads the PEM file at path and checks that it holds a block whose
// type ends in kind (CERTIFICATE; PRIVATE KEY, also EC or RSA PRIVATE KEY),
// so that a file swapped for the other fails with the file's own name.
func readPEM(path, kind string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM %s", path, kind)
		}
		if strings.HasSuffix(block.Type, kind) {
			return data, nil
		}
	}
}
