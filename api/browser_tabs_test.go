package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"roomcast/redisscripts/redistest"
)

// Tabs of the chat page in one browser share one stream
// (api/web/sharedstream.js): three tabs of one user in one room make one
// stream on the server, a message reaches all three, and when the tab that
// holds the stream closes, another takes over, so that a message posted
// meanwhile reaches the other two exactly once. Without Web Locks each tab
// has a stream of its own. Eight tabs, more than the six connections a
// browser allows per host over HTTP/1.1, all connect and all receive.
func TestChatPageTabs(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)

	t.Run("LeaderCloses", func(t *testing.T) {
		// Short heartbeats: the server notices the closed tab's stream soon.
		srv := startServer(t, serverConfig{Redis: rs, Heartbeat: 200 * time.Millisecond})
		// The stream of the tab that takes over is held until a message
		// has been posted: only resuming from the last id brings it.
		front := streamHoldingProxy(t, srv.URL)
		const room = "tabs"
		tabs := openTabs(t, browser, front.URL, "tia", room, 3)
		awaitStreams(t, srv, 1)
		leader := checkLeader(t, tabs)

		postHTTP(t, srv.URL, room, "before")
		for _, p := range tabs {
			p.awaitRoomText(room, "before")
		}
		last := leader.evalString(`window.streams.lastEventId`)

		closeTab(t, leader)
		var rest []*chatPage
		for _, p := range tabs {
			if p != leader {
				rest = append(rest, p)
			}
		}
		var takeover *url.URL
		select {
		case takeover = <-front.asked:
		case <-time.After(10 * time.Second):
			t.Fatal("no tab took the stream over")
		}
		if got := takeover.Query().Get("last_event_id"); got != last {
			t.Fatalf("the stream taken over resumes from %q, want the last id seen, %q", got, last)
		}
		postHTTP(t, srv.URL, room, "meanwhile")
		front.release()
		for _, p := range rest {
			p.awaitRoomText(room, "meanwhile")
		}
		awaitStreams(t, srv, 1)
		checkLeader(t, rest)
		postHTTP(t, srv.URL, room, "after")
		for _, p := range rest {
			p.awaitRoomText(room, "after")
			if got, want := fmt.Sprint(p.roomTexts(room)), "[before meanwhile after]"; got != want {
				t.Fatalf("%s shows %s, want %s: each message once", p.name, got, want)
			}
		}
	})

	t.Run("WithoutWebLocks", func(t *testing.T) {
		srv := startServer(t, serverConfig{Redis: rs})
		const room = "tabs-alone"
		tabs := openTabs(t, browser, srv.URL, "ugo", room, 2, `delete Navigator.prototype.locks;`)
		// Each tab holds a stream of its own, as before sharedstream.js.
		awaitStreams(t, srv, 2)
		postHTTP(t, srv.URL, room, "to both")
		for _, p := range tabs {
			p.awaitRoomText(room, "to both")
			checkLeader(t, []*chatPage{p})
		}
	})

	t.Run("MoreTabsThanConnections", func(t *testing.T) {
		srv := startServer(t, serverConfig{Redis: rs})
		const room = "many-tabs"
		tabs := openTabs(t, browser, srv.URL, "uma", room, 8)
		awaitStreams(t, srv, 1)
		checkLeader(t, tabs)
		postHTTP(t, srv.URL, room, "to every tab")
		for _, p := range tabs {
			p.awaitRoomText(room, "to every tab")
		}
	})
}

// openTabs opens n tabs of the chat page in browser, all joined to room as
// user, with their EventSources counted (streamCounter) and the scripts
// given run first, and waits until each shows its stream connected.
func openTabs(t *testing.T, browser context.Context, base, user, room string, n int, scripts ...string) []*chatPage {
	t.Helper()
	count := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		for _, script := range append(scripts, streamCounter) {
			_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument,
				page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
			if err != nil {
				return err
			}
		}
		return nil
	})
	address := base + "/#" + url.Values{"room": {room}, "name": {user}}.Encode()
	tabs := make([]*chatPage, n)
	for i := range tabs {
		tabs[i] = openPage(t, browser, address, fmt.Sprintf("%s's tab %d", user, i+1), count)
	}
	for _, p := range tabs {
		p.awaitState("connected")
	}
	return tabs
}

// awaitStreams waits until the server counts n open streams.
func awaitStreams(t *testing.T, srv *testServer, n int) {
	t.Helper()
	want := fmt.Sprint(n)
	waitFor(t, "roomcast_streams_open "+want, func() bool {
		return scrape(t, srv, "roomcast_streams_open") == want
	})
}

// checkLeader fails the test unless exactly one of tabs holds an
// EventSource, and has opened only that one; it returns that tab.
func checkLeader(t *testing.T, tabs []*chatPage) *chatPage {
	t.Helper()
	var leader *chatPage
	for _, p := range tabs {
		open := p.evalInt(`window.streams.open`)
		if open == 0 {
			continue
		}
		if open != 1 || leader != nil {
			t.Fatalf("%s holds %d streams, and %v another: want one tab to hold one", p.name, open, leader != nil)
		}
		leader = p
	}
	if leader == nil {
		t.Fatalf("no tab holds the stream")
	}
	if n := leader.evalInt(`window.streams.opened`); n != 1 {
		t.Fatalf("%s opened %d streams, want 1", leader.name, n)
	}
	return leader
}

// closeTab closes a tab as its user does, and waits until it is gone.
func closeTab(t *testing.T, p *chatPage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Cancel(ctx); err != nil {
		t.Fatalf("close %s: %v", p.name, err)
	}
}

// streamProxy serves upstream through a reverse proxy that holds the
// second stream request (the first after the one the tabs share) until
// release is called, sending its address to asked.
type streamProxy struct {
	*httptest.Server
	asked   chan *url.URL
	release func()
}

func streamHoldingProxy(t *testing.T, upstream string) *streamProxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // streams pass at once
	var streams atomic.Int32
	released := make(chan struct{})
	h := &streamProxy{asked: make(chan *url.URL, 1), release: sync.OnceFunc(func() { close(released) })}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/stream" && streams.Add(1) == 2 {
			h.asked <- r.URL
			select {
			case <-released:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.release()
		h.CloseClientConnections()
		h.Close()
	})
	return h
}
