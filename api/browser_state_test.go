package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"roomcast/redisscripts/redistest"
)

// The chat page says what works: its first screen is ready to join and
// sends with Enter, a room whose history is still on its way says that it
// loads (not that it is empty), a text of only white space (by the server's
// rule) is not sent, a message sent while Redis is down waits as pending
// under a "can't send" badge and is stored exactly once when Redis is back,
// a history that could not load is loaded and its banner cleared once Redis
// answers, and a post whose answer is lost is sent again with the same
// Idempotency-Key, so it is stored once.
func TestChatPageShowsWhatWorks(t *testing.T) {
	browser := startBrowser(t)

	t.Run("FirstScreen", func(t *testing.T) {
		// A server of its own: a new origin, so no room or name is remembered.
		srv := startServer(t, serverConfig{})
		p := openPage(t, browser, srv.URL+"/", "judy")

		type firstScreen struct {
			Room               string `json:"room"`
			State              string `json:"state"`
			HintShown          bool   `json:"hintShown"`
			Focused            string `json:"focused"`
			ValueInText        bool   `json:"valueInText"`
			PlaceholderDiffers bool   `json:"placeholderDiffers"`
		}
		got := evaluate[firstScreen](p, `(() => {
			const room = document.getElementById('room');
			const hint = document.getElementById('hint');
			return {
				room: room.value,
				state: document.getElementById('status').dataset.state,
				hintShown: !hint.hidden && hint.textContent.trim() !== '' && hint.getBoundingClientRect().height > 0,
				focused: document.activeElement.id,
				valueInText: getComputedStyle(room).color === getComputedStyle(document.body).color,
				placeholderDiffers: getComputedStyle(room, '::placeholder').color !== getComputedStyle(room).color,
			};
		})()`)
		want := firstScreen{Room: "lobby", State: "idle", HintShown: true, Focused: "name", ValueInText: true, PlaceholderDiffers: true}
		if got != want {
			t.Fatalf("first screen = %+v, want %+v", got, want)
		}

		// Enter in the name field joins the default room.
		p.run(chromedp.SendKeys(chromedp.ID("name"), "judy"+kb.Enter))
		p.awaitState("connected")
		p.await(`document.getElementById('hint').hidden && !document.getElementById('empty').hidden`)
		if got := p.evalString(`location.hash`); got != "#room=lobby&name=judy" {
			t.Fatalf("joined %s, want the room lobby as judy", got)
		}

		// Shift+Enter makes a new line, Enter sends.
		p.run(chromedp.SendKeys(chromedp.ID("text"), "first line"), pressEnter(chromedp.ModifierShift),
			chromedp.KeyEvent("second line"), pressEnter(chromedp.ModifierNone))
		const text = "first line\nsecond line"
		p.awaitSent(text)
		if got := historyTexts(t, srv, "lobby"); len(got) != 1 || got[0] != text {
			t.Fatalf("history = %q, want [%q]", got, text)
		}
		lines := p.evalInt(`(() => {
			const e = document.querySelector('#messages .text');
			return Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight));
		})()`)
		if lines != 2 {
			t.Fatalf("the message is drawn on %d lines, want 2", lines)
		}
	})

	t.Run("LoadingUntilFirstPage", func(t *testing.T) {
		const room = "slow-history"
		srv := startServer(t, serverConfig{})
		before := srv.post(t, room, "posted before the page opened")
		front := historyHoldingProxy(t, srv.URL)
		p := openPage(t, browser, front.URL+"/#"+url.Values{"room": {room}, "name": {"mia"}}.Encode(), "mia")
		select {
		case <-front.asked:
		case <-time.After(10 * time.Second):
			t.Fatalf("the page did not ask for the history of %s: %s", room, p.describe())
		}
		// Connected, with the history on its way: the room is not empty,
		// its messages are loading.
		p.await(`(() => {
			const loading = document.getElementById('loading');
			return document.getElementById('status').dataset.state === 'connected' &&
				loading !== null && !loading.hidden && loading.getBoundingClientRect().height > 0 &&
				loading.textContent.startsWith('Loading') && document.getElementById('empty').hidden;
		})()`)
		front.release()
		p.awaitText(before.Text)
		p.await(`document.getElementById('loading').hidden && document.getElementById('empty').hidden`)
	})

	t.Run("RefusesBlankText", func(t *testing.T) {
		srv := startServer(t, serverConfig{})
		p := openChat(t, browser, srv.URL, "blank", "noor")
		// The page's rule is the server's: what strings.TrimSpace empties.
		var want []int
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if utf8.ValidRune(r) && strings.TrimSpace(string(r)) == "" {
				want = append(want, int(r))
			}
		}
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		defer cancel()
		type blankRule struct {
			Blank []int  `json:"blank"` // the characters that alone are blank
			Mixed []bool `json:"mixed"` // '', white space of three kinds, text in spaces
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[blankRule](`import('/assets/rules.js').then(({ isBlank }) => {
			const blank = [];
			for (let c = 0; c <= 0x10FFFF; c++) {
				if ((c < 0xD800 || c > 0xDFFF) && isBlank(String.fromCodePoint(c))) {
					blank.push(c);
				}
			}
			return { blank, mixed: [isBlank(''), isBlank(' \u0085\u3000\n'), isBlank(' a ')] };
		})`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate isBlank: %v", err)
		}
		if !slices.Equal(got.Blank, want) {
			t.Fatalf("the page takes as blank the characters %U, want %U", got.Blank, want)
		}
		if wantMixed := []bool{true, true, false}; !slices.Equal(got.Mixed, wantMixed) {
			t.Fatalf("isBlank of '', white space, text in spaces = %v, want %v", got.Mixed, wantMixed)
		}
		// NEL is white space to Go, not to String.prototype.trim.
		const nel = "\u0085 "
		if n := p.evalInt(`(() => {
			document.getElementById('text').value = '` + nel + `';
			document.getElementById('compose').requestSubmit();
			return document.querySelectorAll('#outbox > li').length;
		})()`); n != 0 {
			t.Fatalf("the page sent a text of white space (%d pending)", n)
		}
		if got := p.evalString(`document.getElementById('text').value`); got != nel {
			t.Fatalf("message box holds %q, want the refused text kept", got)
		}
	})

	t.Run("SendsThroughRedisOutage", func(t *testing.T) {
		const room = "outage"
		// Redis with an append-only file, so that a restart keeps the room.
		rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
		srv := startServer(t, serverConfig{Redis: rs})
		p := openChat(t, browser, srv.URL, room, "ivan")
		p.send("before the outage")
		posts := recordPosts(t, p)

		rs.Kill()
		const text, then = "sent while Redis is down", "and one more"
		p.run(chromedp.SendKeys(chromedp.ID("text"), text), chromedp.Click(chromedp.ID("send")))
		p.awaitFunc("the message pending", `(text) => Array.from(document.querySelectorAll('#outbox > li.pending'))
			.some(li => li.dataset.state === 'waiting' && li.querySelector('.text').textContent === text)`, text)
		p.awaitState("unavailable")
		if got := p.evalString(`document.getElementById('text').value`); got != "" {
			t.Fatalf("message box holds %q, want it empty: the message waits in the timeline", got)
		}
		if p.evalString(`String(document.getElementById('error').hidden)`) != "true" {
			t.Fatalf("a banner shows while the message waits: %s", p.describe())
		}
		posts.awaitCount(2) // sent again while Redis is still down
		p.run(chromedp.SendKeys(chromedp.ID("text"), then), chromedp.Click(chromedp.ID("send")))
		if got := p.evalString(`Array.from(document.querySelectorAll('#outbox .text'), e => e.textContent).join('|')`); got != text+"|"+then {
			t.Fatalf("pending = %q, want both messages in the order sent", got)
		}

		rs.Restart()
		p.awaitWithin(30*time.Second, "the messages sent", awaitSentFunc, then)
		p.awaitState("connected")
		if p.evalString(`String(document.getElementById('error').hidden)`) != "true" {
			t.Fatalf("a banner stays after the recovery: %s", p.describe())
		}
		want := []string{"before the outage", text, then}
		if got := historyTexts(t, srv, room); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("history = %q, want %q", got, want)
		}
		if got := p.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("page shows %q, want %q", got, want)
		}
		// Every post but the last was of the first message.
		keys := posts.snapshot()
		first := &postLog{t: t, keys: keys[:len(keys)-1]}
		first.checkOneKey()
		if last := keys[len(keys)-1]; last == keys[0] {
			t.Fatalf("two messages were sent with one key %q", last)
		}
	})

	t.Run("HistoryBannerClearsOnRecovery", func(t *testing.T) {
		const room = "no-history"
		rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
		srv := startServer(t, serverConfig{Redis: rs})
		before := srv.post(t, room, "posted before the outage")
		rs.Kill()
		p := openPage(t, browser, srv.URL+"/#"+url.Values{"room": {room}, "name": {"lena"}}.Encode(), "lena")
		p.awaitFunc("the history banner", `() => !document.getElementById('error').hidden &&
			document.getElementById('error').textContent.startsWith('Could not load history')`)
		rs.Restart()
		p.awaitWithin(30*time.Second, "the banner gone", `() => document.getElementById('error').hidden`)
		p.awaitText(before.Text)
		p.awaitState("connected")
	})

	t.Run("ResendsLostAnswerWithSameKey", func(t *testing.T) {
		const room = "lost-answer"
		srv := startServer(t, serverConfig{})
		front := answerLosingProxy(t, srv.URL)
		p := openChat(t, browser, front.URL, room, "kate")
		posts := recordPosts(t, p)

		const text = "stored, but the answer was lost"
		p.send(text)
		if got := historyTexts(t, srv, room); len(got) != 1 || got[0] != text {
			t.Fatalf("history = %q, want the message once", got)
		}
		if got := p.texts(); len(got) != 1 || got[0] != text {
			t.Fatalf("page shows %q, want the message once", got)
		}
		posts.awaitCount(2)
		posts.checkOneKey()
	})
}

// pressEnter presses Enter with modifiers on the focused element as a
// keyboard does: the key-down carries the text, so a page that prevents
// its default gets no new line. (chromedp.KeyEvent types the text in an
// event of its own, which no page can prevent.)
func pressEnter(modifiers kb.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		key := input.DispatchKeyEventParams{
			Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			Modifiers: int64(modifiers),
		}
		down, up := key, key
		down.Type, down.Text, down.UnmodifiedText = input.DispatchKeyEventTypeKeyDown, "\r", "\r"
		up.Type = input.DispatchKeyEventTypeKeyUp
		for _, k := range []input.DispatchKeyEventParams{down, up} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, k); err != nil {
				return fmt.Errorf("press Enter: %w", err)
			}
		}
		return nil
	})
}

// answerLosingProxy serves upstream through a reverse proxy that passes the
// first post of a message on but answers it with 502, as when a connection breaks after
// the server stored a message.
func answerLosingProxy(t *testing.T, upstream string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // streams pass at once
	proxy.ModifyResponse = func(resp *http.Response) error {
		// Only a message's answer: typing tells the server too.
		if resp.Request.Method == http.MethodPost && strings.HasSuffix(resp.Request.URL.Path, "/messages") &&
			lost.CompareAndSwap(false, true) {
			return errors.New("answer lost on the way back")
		}
		return nil
	}
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(func() {
		front.CloseClientConnections()
		front.Close()
	})
	return front
}

// holdingProxy serves upstream through a reverse proxy that holds the first
// request for a room's newest messages until release is called; asked is
// closed when that request has come.
type holdingProxy struct {
	*httptest.Server
	asked   chan struct{}
	release func()
}

func historyHoldingProxy(t *testing.T, upstream string) *holdingProxy {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // streams pass at once
	var held atomic.Bool
	released := make(chan struct{})
	h := &holdingProxy{asked: make(chan struct{}), release: sync.OnceFunc(func() { close(released) })}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/messages") &&
			!r.URL.Query().Has("before") && held.CompareAndSwap(false, true) {
			close(h.asked)
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

// historyTexts reads the texts of room's newest 200 messages from srv.
func historyTexts(t *testing.T, srv *testServer, room string) []string {
	t.Helper()
	resp, body := srv.do(t, http.MethodGet, "/rooms/"+room+"/messages?limit=200", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("history status = %d, want 200; body %s", resp.StatusCode, body)
	}
	var page struct {
		Messages []message `json:"messages"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("history %s: %v", body, err)
	}
	texts := make([]string, 0, len(page.Messages))
	for _, m := range page.Messages {
		texts = append(texts, m.Text)
	}
	return texts
}

// postLog is the Idempotency-Keys of the posts a page sends.
type postLog struct {
	t    *testing.T
	mu   sync.Mutex
	keys []string
}

// recordPosts records the posts p sends from now until the test ends.
func recordPosts(t *testing.T, p *chatPage) *postLog {
	t.Helper()
	l := &postLog{t: t}
	ctx, cancel := context.WithCancel(p.ctx)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range requests {
			if err != nil {
				return
			}
			r := ev.Request
			if r.Method != http.MethodPost || !strings.HasSuffix(r.URL, "/messages") {
				continue
			}
			key, _ := r.Headers["Idempotency-Key"].(string)
			l.mu.Lock()
			l.keys = append(l.keys, key)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

func (l *postLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

// awaitCount waits until at least n posts were sent.
func (l *postLog) awaitCount(n int) {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(l.snapshot()) < n {
		if time.Now().After(deadline) {
			l.t.Fatalf("the page sent %d posts, want at least %d", len(l.snapshot()), n)
		}
		select {
		case <-l.t.Context().Done():
			l.t.Fatal("test ended while waiting for posts")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkOneKey fails the test unless every post recorded carried one and
// the same Idempotency-Key.
func (l *postLog) checkOneKey() {
	l.t.Helper()
	keys := l.snapshot()
	if len(keys) == 0 || keys[0] == "" {
		l.t.Fatalf("posts carried keys %q, want an Idempotency-Key", keys)
	}
	for _, k := range keys {
		if k != keys[0] {
			l.t.Fatalf("posts of one message carried keys %q, want one key", keys)
		}
	}
}
