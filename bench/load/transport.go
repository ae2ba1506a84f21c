package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// protocol names how the tool speaks to the server, for the report.
func (c config) protocol() string {
	switch {
	case c.url.Scheme == "http":
		return "HTTP/1.1"
	case c.h2:
		return "HTTP/2 over TLS"
	}
	return "HTTP/1.1 over TLS"
}

// transport reaches the server as -url, -h2 and -insecure say. conns, if not
// nil, counts the connections it holds open.
func (c config) transport(conns *connCount) *http.Transport {
	dial := (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	tr := &http.Transport{DialContext: dial, DisableCompression: true}
	if conns != nil {
		tr.DialContext = conns.counting(dial)
	}
	if c.url.Scheme == "https" {
		// The server is on 127.0.0.1, whose certificate is most often
		// self-signed: -insecure accepts it.
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: c.insecure}
		tr.ForceAttemptHTTP2 = c.h2
		if !c.h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
	}
	return tr
}

// connCount counts the connections of a transport that are open.
type connCount struct{ open atomic.Int64 }

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

func (n *connCount) counting(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		n.open.Add(1)
		return &countedConn{Conn: conn, n: n}, nil
	}
}

type countedConn struct {
	net.Conn
	n    *connCount
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.open.Add(-1) })
	return c.Conn.Close()
}

// streamClients gives each stream its client. Over HTTP/2 the transport
// puts as many streams on a connection as the server allows (250 for Go's
// server); with -streams-per-conn each group of that many streams gets a
// transport, hence a connection, of its own, as tabs of different browsers
// would.
type streamClients struct {
	perConn int
	h2      bool // a stream answered over another protocol is a failure
	mu      sync.Mutex
	clients []*http.Client
	cfg     config
	conns   connCount
}

func newStreamClients(cfg config) *streamClients {
	return &streamClients{perConn: cfg.streamsPerConn, h2: cfg.h2, cfg: cfg}
}

// client returns the client of stream i.
func (p *streamClients) client(i int) *http.Client {
	group := 0
	if p.perConn > 0 {
		group = i / p.perConn
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.clients) <= group {
		tr := p.cfg.transport(&p.conns)
		tr.ResponseHeaderTimeout = 10 * time.Second
		p.clients = append(p.clients, &http.Client{Transport: tr})
	}
	return p.clients[group]
}

// close closes the connections that no stream uses any more.
func (p *streamClients) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}
