package main

import (
	"bytes"
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
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"roomcast/redisscripts/redistest"
)

// certPair is a self-signed certificate for 127.0.0.1 and its key, written
// to PEM files.
type certPair struct {
	certFile, keyFile string
	pool              *x509.CertPool // trusts the certificate
}

func newCertPair(t *testing.T) certPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "roomcast test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := certPair{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	writePEM(t, p.certFile, "CERTIFICATE", der)
	writePEM(t, p.keyFile, "PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p.pool.AddCert(cert)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsClient trusts pair and counts the TCP connections it dials. With h2
// it negotiates HTTP/2, else it speaks HTTP/1.1 over TLS.
func tlsClient(pair certPair, h2 bool, dials *atomic.Int32) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pair.pool},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr}
}

// startTLS starts run with a fresh certificate, streams and posts over
// client (from tlsClient), a 1s heartbeat, and environ.
func startTLS(t *testing.T, pair certPair, client *http.Client, environ ...string) *instance {
	t.Helper()
	in := startRun(t, append([]string{"REDIS_URL=" + redistest.Start(t).URL(), "TLS_CERT_FILE=" + pair.certFile,
		"TLS_KEY_FILE=" + pair.keyFile, "HEARTBEAT_INTERVAL=1s"}, environ...)...)
	in.url = "https://" + strings.TrimPrefix(in.url, "http://")
	in.client = client
	t.Cleanup(client.CloseIdleConnections)
	return in
}

// TestHTTP2StreamsShareOneConnection opens more streams than the six
// connections a browser allows per host over HTTP/1.1, all on one HTTP/2
// connection, where each is served by its handler rather than hijacked:
// a post reaches every one, heartbeats arrive, and shutdown ends them all
// and returns.
func TestHTTP2StreamsShareOneConnection(t *testing.T) {
	redistest.SkipIfShort(t, "a TLS server that waits for heartbeats")
	pair := newCertPair(t)
	var dials atomic.Int32
	in := startTLS(t, pair, tlsClient(pair, true, &dials))

	const n = 8
	streams := make([]*lineStream, n)
	for i := range streams {
		s := in.openLines(t, "/rooms/h2/stream")
		if s.proto != 2 {
			t.Fatalf("stream %d over HTTP/%d, want HTTP/2", i, s.proto)
		}
		if line, _ := s.next(t); !strings.HasPrefix(line, "retry: ") {
			t.Fatalf("stream %d began with %q, want a retry line", i, line)
		}
		streams[i] = s
	}
	id := postedID(t, in, "h2", "to every tab")
	for _, s := range streams {
		wantEvent(t, s, id)
	}
	for i, s := range streams {
		if line, _ := s.next(t); line != ": ping" {
			t.Fatalf("stream %d: line %q after the message, want the heartbeat", i, line)
		}
	}
	if got := dials.Load(); got != 1 {
		t.Fatalf("%d streams and a post dialed %d connections, want 1", n, got)
	}
	if err := run(t.Context(), []string{"-probe", in.url + "/readyz"}, nil, nil, nil); err != nil {
		t.Fatalf("-probe over HTTPS with a certificate it does not trust: %v", err)
	}

	if err := in.stop(); err != nil {
		t.Fatalf("run after cancellation: %v, want nil", err)
	}
	for _, s := range streams {
		wantStreamClosed(t, s)
	}
}

// TestHTTP1StreamOverTLS streams over HTTP/1.1 over TLS, where the stream
// engine owns the TLS connection as it owns a plain one.
func TestHTTP1StreamOverTLS(t *testing.T) {
	redistest.SkipIfShort(t, "a TLS server that waits for heartbeats")
	pair := newCertPair(t)
	var dials atomic.Int32
	in := startTLS(t, pair, tlsClient(pair, false, &dials))

	s := in.openLines(t, "/rooms/h1/stream")
	if s.proto != 1 {
		t.Fatalf("stream over HTTP/%d, want HTTP/1.1", s.proto)
	}
	if line, _ := s.next(t); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("stream began with %q, want a retry line", line)
	}
	id := postedID(t, in, "h1", "over TLS")
	wantEvent(t, s, id)
	if line, _ := s.next(t); line != ": ping" {
		t.Fatalf("line %q after the message, want the heartbeat", line)
	}
	if err := in.stop(); err != nil {
		t.Fatalf("run after cancellation: %v, want nil", err)
	}
	wantStreamClosed(t, s)
}

// TestHTTP2ConnectionThatTakesNoBytesIsClosed stalls an HTTP/2 client that
// never reads while its streams are written to. Over HTTP/1.1 a stream's
// write deadline closes its connection; over HTTP/2 it only queues a
// RST_STREAM behind the blocked connection write, so the handlers would
// wait for good: the connection must be closed, and every goroutine of it
// and of its streams end.
func TestHTTP2ConnectionThatTakesNoBytesIsClosed(t *testing.T) {
	redistest.SkipIfShort(t, "a TLS server that waits for heartbeats")
	pair := newCertPair(t)
	var dials atomic.Int32
	in := startTLS(t, pair, tlsClient(pair, true, &dials),
		"STREAM_WRITE_TIMEOUT=1s", "POST_RATE=0", "MAX_STREAMS_PER_CLIENT=0", "LOG_LEVEL=warn")
	in.postMessage(t, "stall", "the posting connection is open before the count")
	before := runtime.NumGoroutine()

	const streams = 20
	conn := stalledHTTP2(t, strings.TrimPrefix(in.url, "https://"), pair, "/rooms/stall/stream", streams)
	defer conn.Close()
	text := strings.Repeat("x", 4000)
	// 20 streams × 200 posts × 4 KB is far more than the socket buffers
	// hold, so the server's writes block.
	for range 200 {
		in.postMessage(t, "stall", text)
	}
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
			t.Fatalf("%d goroutines, %d before the stalled connection: it was not closed", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stalledHTTP2 opens n streams of path over one HTTP/2 connection with a
// small receive buffer and flow-control windows that never hold the server
// back, then stops reading.
func stalledHTTP2(t *testing.T, addr string, pair certPair, path string, n int) net.Conn {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var sockErr error
		if err := c.Control(func(fd uintptr) {
			sockErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return sockErr
	}}
	conn, err := (&tls.Dialer{NetDialer: &dialer, Config: &tls.Config{RootCAs: pair.pool, NextProtos: []string{"h2"}}}).
		DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	const maxWindow = 1<<31 - 1
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, maxWindow-65535); err != nil {
		t.Fatal(err)
	}
	// The server's settings must be acknowledged, once they came.
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			break
		}
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i := range n {
		block.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", addr}, {":path", path}} {
			if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block.Bytes(),
			EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}
