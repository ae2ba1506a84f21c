package api_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts/redistest"
)

// The chat page in headless Debian chromium: two pages talk, a page rides
// out a server restart without losing or doubling a message, Redis losing
// its data shows as a divider in the timeline while the badge returns to
// "connected", hostile text stays text, history pages
// back, refused posts show their problem, and with sign-in on, pages talk
// with tokens and show a missing, refused or expired token. With
// ROOMCAST_SCREENSHOT=path it saves a screenshot of a conversation there.
func TestChatPageInBrowser(t *testing.T) {
	rs := redistest.Start(t)
	srv := startRestartable(t, rs)
	browser := startBrowser(t)

	t.Run("TwoPagesExchangeMessages", func(t *testing.T) {
		alice := openChat(t, browser, srv.URL, "two-pages", "alice")
		bob := openChat(t, browser, srv.URL, "two-pages", "bob")
		alice.run(chromedp.EmulateViewport(960, 600))
		bob.run(chromedp.EmulateViewport(390, 760)) // a phone

		alice.send("Hi Bob! Did the deploy go out?")
		bob.awaitText("Hi Bob! Did the deploy go out?")
		bob.send("Yes, 5 minutes ago. Streams reconnected by themselves")
		alice.awaitText("Yes, 5 minutes ago. Streams reconnected by themselves")
		alice.send("Great, thanks!")
		bob.awaitText("Great, thanks!")

		want := []shownMessage{
			{User: "alice", Text: "Hi Bob! Did the deploy go out?"},
			{User: "bob", Text: "Yes, 5 minutes ago. Streams reconnected by themselves"},
			{User: "alice", Text: "Great, thanks!"},
		}
		for _, p := range []*chatPage{alice, bob} {
			got := p.messages()
			if len(got) != len(want) {
				t.Fatalf("%s sees %d messages %+v, want %d", p.name, len(got), got, len(want))
			}
			for i := range want {
				if got[i].User != want[i].User || got[i].Text != want[i].Text {
					t.Fatalf("%s: message %d = %+v, want %+v", p.name, i, got[i], want[i])
				}
				if own := got[i].User == p.name; got[i].Own != own {
					t.Fatalf("%s: message %d own = %v, want %v", p.name, i, got[i].Own, own)
				}
			}
		}
		// On a phone the page fits the width and the message box is on screen.
		bob.await(`document.documentElement.scrollWidth <= window.innerWidth &&
			document.getElementById('compose').getBoundingClientRect().bottom <= window.innerHeight`)
		alice.screenshot()
	})

	t.Run("ReconnectsAfterRestart", func(t *testing.T) {
		const room = "restart"
		first := postHTTP(t, srv.URL, room, "before the restart")
		p := openChat(t, browser, srv.URL, room, "carol")
		p.awaitText(first.Text)

		srv.Stop()
		p.awaitState("reconnecting")
		other := startServer(t, serverConfig{Redis: rs}) // another instance stays up
		meanwhile := other.post(t, room, "posted while the server was down")
		srv.Start()
		p.awaitText(meanwhile.Text)
		p.awaitState("connected")
		after := postHTTP(t, srv.URL, room, "after the restart")
		p.awaitText(after.Text)

		got := p.messages()
		want := []message{first, meanwhile, after}
		if len(got) != len(want) {
			t.Fatalf("page shows %d messages %+v, want %d", len(got), got, len(want))
		}
		for i, m := range want {
			if got[i].ID != m.ID || got[i].Text != m.Text {
				t.Fatalf("message %d = %+v, want id %s text %q", i, got[i], m.ID, m.Text)
			}
		}
	})

	t.Run("ShowsMissedMessagesInline", func(t *testing.T) {
		const room = "data-loss"
		before := postHTTP(t, srv.URL, room, "before Redis lost its data")
		p := openChat(t, browser, srv.URL, room, "gina")
		p.awaitText(before.Text)
		if err := rs.Client().FlushAll(t.Context()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		after := postHTTP(t, srv.URL, room, "after Redis lost its data")
		p.awaitText(after.Text)
		got := p.evalString(`Array.from(document.querySelectorAll('#messages > li'),
			li => li.classList.contains('gap') ? 'gap' : li.dataset.id).join(' ')`)
		if want := before.ID + " gap " + after.ID; got != want {
			t.Fatalf("list = %s, want %s", got, want)
		}
		// The divider tells of the loss; the badge tells that all works now.
		p.awaitState("connected")
		if gap := p.evalString(`document.querySelector('#messages > .gap').textContent`); !strings.HasPrefix(gap, "Missed messages") {
			t.Fatalf("divider says %q, want it to tell of missed messages", gap)
		}
	})

	t.Run("HostileTextIsText", func(t *testing.T) {
		const hostile = `<script>window.pwned=1;alert(1)</script><img src=x onerror="window.pwned=2">`
		const hostileName = `<b onmouseover=alert(1)>mallory</b>`
		mallory := openChat(t, browser, srv.URL, "hostile", hostileName)
		dave := openChat(t, browser, srv.URL, "hostile", "dave")
		mallory.send(hostile)
		for _, p := range []*chatPage{dave, mallory} {
			p.awaitText(hostile)
			got := p.messages()
			if len(got) != 1 || got[0].Text != hostile || got[0].User != hostileName {
				t.Fatalf("%s shows %+v, want one message from %q with text %q", p.name, got, hostileName, hostile)
			}
			injected := p.evalInt(`document.querySelectorAll('#messages script, #messages img, #messages b').length +
				Array.from(document.querySelectorAll('#messages .text, #messages .user'), e => e.childElementCount).reduce((a, b) => a + b, 0) +
				(window.pwned ? 100 : 0)`)
			if injected != 0 {
				t.Fatalf("%s: message text became markup (score %d)", p.name, injected)
			}
		}
	})

	t.Run("LoadsOlderHistory", func(t *testing.T) {
		const room = "long-history"
		for i := 1; i <= 60; i++ {
			postHTTP(t, srv.URL, room, fmt.Sprintf("m%02d", i))
		}
		p := openChat(t, browser, srv.URL, room, "erin")
		p.awaitText("m60")
		if got := p.texts(); len(got) != 50 || got[0] != "m11" {
			t.Fatalf("first page shows %d messages %v, want 50 from m11", len(got), got)
		}
		p.run(chromedp.WaitVisible(chromedp.ID("older")), chromedp.Click(chromedp.ID("older")))
		p.awaitText("m01")
		p.await(`document.getElementById('older').hidden`)
		got := p.texts()
		if len(got) != 60 {
			t.Fatalf("after loading older: %d messages, want 60", len(got))
		}
		for i, text := range got {
			if want := fmt.Sprintf("m%02d", i+1); text != want {
				t.Fatalf("message %d = %q, want %q", i, text, want)
			}
		}
	})

	t.Run("ShowsProblems", func(t *testing.T) {
		p := openChat(t, browser, srv.URL, "problems", "frank")
		long := strings.Repeat("x", browserMaxMessageBytes+1)
		p.run(chromedp.SetValue(chromedp.ID("text"), long), chromedp.Click(chromedp.ID("send")))
		p.run(chromedp.WaitVisible(chromedp.ID("error")))
		if got := p.evalString(`document.getElementById('error').textContent`); !strings.Contains(got, "Invalid message") || !strings.Contains(got, "longer than") {
			t.Fatalf("error shown = %q, want the problem's title and detail", got)
		}
		if got := p.evalString(`document.getElementById('text').value`); got != long {
			t.Fatalf("message box lost the unsent text (%d chars)", len(got))
		}
		if n := len(p.messages()); n != 0 {
			t.Fatalf("page shows %d messages after a refused post, want 0", n)
		}
	})

	t.Run("SignsInWithToken", func(t *testing.T) {
		const room = "signed-in"
		secure := startServer(t, serverConfig{Redis: rs, Security: api.Security{
			Tokens: verifier(t, auth.Config{Secret: testSecret}), JWTCookie: "roomcast_token",
		}})
		withToken := func(name, token string) string {
			return secure.URL + "/#" + url.Values{"room": {room}, "name": {name}, "token": {token}}.Encode()
		}

		// Opened first, so that its token runs out while the rest goes on;
		// long enough for a page to connect on a loaded machine.
		expiresAt := time.Now().Add(8 * time.Second)
		expiring := openPage(t, browser, withToken("carol", hs256(t, "carol", jwt.MapClaims{"exp": expiresAt.Unix()})), "carol")
		expiring.awaitState("connected")

		// The name in the hash is ignored: the token's subject is the user.
		aliceToken := hs256(t, "alice", nil)
		alice := openPage(t, browser, withToken("not-alice", aliceToken), "alice")
		alice.awaitState("connected")
		bob := openPage(t, browser, withToken("bob", hs256(t, "bob", nil)), "bob")
		bob.awaitState("connected")

		type tokenView struct {
			Name     string `json:"name"`
			ReadOnly bool   `json:"readOnly"`
			Type     string `json:"type"`
			Hash     string `json:"hash"`
			Kept     bool   `json:"kept"`
		}
		got := evaluate[tokenView](alice, fmt.Sprintf(`({
			name: document.getElementById('name').value,
			readOnly: document.getElementById('name').readOnly,
			type: document.getElementById('token').type,
			hash: location.hash,
			kept: sessionStorage.getItem('roomcast.token') === %q,
		})`, aliceToken))
		want := tokenView{Name: "alice", ReadOnly: true, Type: "password", Hash: "#room=" + room + "&name=alice", Kept: true}
		if got != want {
			t.Fatalf("alice's page shows %+v, want %+v", got, want)
		}

		// bob's page had loaded its history: the message comes by its stream.
		alice.send("Signed in as alice")
		bob.awaitText("Signed in as alice")
		bob.send("And I as bob")
		alice.awaitText("And I as bob")
		for _, p := range []*chatPage{alice, bob} {
			got := p.messages()
			want := []shownMessage{{User: "alice", Text: "Signed in as alice"}, {User: "bob", Text: "And I as bob"}}
			if len(got) != len(want) {
				t.Fatalf("%s sees %+v, want %d messages", p.name, got, len(want))
			}
			for i := range want {
				if got[i].User != want[i].User || got[i].Text != want[i].Text || got[i].Own != (want[i].User == p.name) {
					t.Fatalf("%s: message %d = %+v, want %+v, own if from %s", p.name, i, got[i], want[i], p.name)
				}
			}
		}

		refused := []struct {
			page       *chatPage
			state, say string
		}{
			{page: openPage(t, browser, secure.URL+"/#room="+room+"&name=dave", "dave without a token"),
				state: "signin", say: "Sign-in needed"},
			{page: openPage(t, browser, withToken("erin", hs256(t, "erin", jwt.MapClaims{"rooms": map[string]any{"read": []string{"elsewhere"}}})), "erin from elsewhere"),
				state: "forbidden", say: "Not allowed in this room"},
			{page: expiring, state: "expired", say: "token has expired"},
		}
		for _, r := range refused {
			r.page.awaitState(r.state)
			if got := r.page.evalString(`document.getElementById('error').textContent`); !strings.Contains(got, r.say) {
				t.Fatalf("%s's page says %q, want %q", r.page.name, got, r.say)
			}
			if r.page.evalString(`String(document.getElementById('send').disabled)`) != "true" {
				t.Fatalf("%s's page still lets one send", r.page.name)
			}
		}
		if now := time.Now(); now.Before(expiresAt.Truncate(time.Second)) {
			t.Fatalf("carol's page showed expiry at %v, before the token expired at %v", now, expiresAt.Truncate(time.Second))
		}
	})
}

// browserMaxMessageBytes is the message limit of the browser test's server.
const browserMaxMessageBytes = 200

// startBrowser starts headless chromium with a fresh profile and returns a
// context of its first tab; the browser exits when the test ends. Without
// chromium the test is skipped, except under CI=true, where it fails.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required under CI=true: %v", err)
		}
		t.Skipf("chromium not installed: %v", err)
	}
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Tabs in the background must keep their timers: EventSource
		// reconnects on one.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.WindowSize(900, 640),
	}
	if testing.Verbose() {
		opts = append(opts, chromedp.CombinedOutput(os.Stderr))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// chatPage is one browser tab showing the chat page.
type chatPage struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu         sync.Mutex
	exceptions []string // uncaught JavaScript exceptions
}

// openChat opens the chat page in a new tab of browser, joined to room as
// name through the URL hash, and waits until its stream is connected. The
// test fails if the page throws an uncaught exception.
func openChat(t *testing.T, browser context.Context, base, room, name string) *chatPage {
	t.Helper()
	p := openPage(t, browser, base+"/#"+url.Values{"room": {room}, "name": {name}}.Encode(), name)
	p.awaitState("connected")
	return p
}

// openPage opens address in a new tab of browser, as the user name, and
// returns at once; setup runs in the tab before it navigates. The test fails
// if the page throws an uncaught exception.
func openPage(t *testing.T, browser context.Context, address, name string, setup ...chromedp.Action[chromedp.Void]) *chatPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	p := &chatPage{t: t, ctx: ctx, name: name}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open a tab: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			p.mu.Lock()
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text = d.Exception.Description
			}
			p.exceptions = append(p.exceptions, fmt.Sprintf("%s at %s:%d", text, d.URL, d.LineNumber+1))
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-watched
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.exceptions) > 0 {
			t.Errorf("%s's page threw: %v", name, p.exceptions)
		}
	})
	p.run(append(setup, chromedp.Navigate(address))...)
	return p
}

// run runs actions on the page, failing the test after 10 s.
func (p *chatPage) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s's page: %v", p.name, err)
	}
}

// await waits until the JavaScript expression is truthy, re-checking it on
// every change of the page.
func (p *chatPage) await(expression string) {
	p.t.Helper()
	p.awaitFunc(expression, "() => "+expression)
}

func (p *chatPage) awaitFunc(what, function string, args ...any) {
	p.t.Helper()
	p.awaitWithin(10*time.Second, what, function, args...)
}

// awaitWithin waits up to d until function, called with args, returns a
// truthy value, re-checking it on every change of the page.
func (p *chatPage) awaitWithin(d time.Duration, what, function string, args ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](function,
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(d), chromedp.WithPollingArgs(args...)))
	if err != nil {
		p.t.Fatalf("%s's page: waiting for %s: %v (%s)", p.name, what, err, p.describe())
	}
}

// describe tells the connection state and the messages shown, for a failure
// message; it does not fail itself.
func (p *chatPage) describe() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`'state ' + document.getElementById('status').dataset.state +
		', messages ' + JSON.stringify(Array.from(document.querySelectorAll('#messages > li'), li => li.textContent)) +
		', pending ' + JSON.stringify(Array.from(document.querySelectorAll('#outbox > li'), li => li.textContent)) +
		', error ' + JSON.stringify(document.getElementById('error').textContent)`))
	if err != nil {
		return "page unreadable: " + err.Error()
	}
	return s
}

// awaitText waits until a message with exactly this text is shown.
func (p *chatPage) awaitText(text string) {
	p.t.Helper()
	p.awaitFunc(fmt.Sprintf("message %q", text),
		`(text) => Array.from(document.querySelectorAll('#messages .text')).some(e => e.textContent === text)`, text)
}

// awaitState waits until the connection state shown is state.
func (p *chatPage) awaitState(state string) {
	p.t.Helper()
	p.awaitFunc(fmt.Sprintf("state %q", state),
		`(state) => document.getElementById('status').dataset.state === state`, state)
}

// send types text (without line breaks) into the message box and sends it,
// then waits until the server has stored it: the box is empty, nothing is
// pending, and the message is in the timeline.
func (p *chatPage) send(text string) {
	p.t.Helper()
	p.run(chromedp.SendKeys(chromedp.ID("text"), text), chromedp.Click(chromedp.ID("send")))
	p.awaitSent(text)
}

// awaitSent waits until the message box is empty, nothing is pending, and a
// message with exactly this text is in the timeline.
func (p *chatPage) awaitSent(text string) {
	p.t.Helper()
	p.awaitWithin(10*time.Second, fmt.Sprintf("message %q sent", text), awaitSentFunc, text)
}

const awaitSentFunc = `(text) => document.getElementById('text').value === '' &&
	document.getElementById('outbox').childElementCount === 0 &&
	Array.from(document.querySelectorAll('#messages .text')).some(e => e.textContent === text)`

// shownMessage is a message as the page shows it.
type shownMessage struct {
	ID   string `json:"id"`
	User string `json:"user"`
	Text string `json:"text"`
	Own  bool   `json:"own"`
}

func (p *chatPage) messages() []shownMessage {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]shownMessage](`Array.from(document.querySelectorAll('#messages .message'), li => ({
		id: li.dataset.id,
		user: li.querySelector('.user').textContent,
		text: li.querySelector('.text').textContent,
		own: li.classList.contains('own'),
	}))`))
	if err != nil {
		p.t.Fatalf("%s's page: read messages: %v", p.name, err)
	}
	return got
}

func (p *chatPage) texts() []string {
	var texts []string
	for _, m := range p.messages() {
		texts = append(texts, m.Text)
	}
	return texts
}

func (p *chatPage) evalInt(expression string) int {
	p.t.Helper()
	return evaluate[int](p, expression)
}

func (p *chatPage) evalString(expression string) string {
	p.t.Helper()
	return evaluate[string](p, expression)
}

// evaluate returns the value of a JavaScript expression on the page, as
// JSON decoded into a T.
func evaluate[T any](p *chatPage, expression string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		p.t.Fatalf("%s's page: %s: %v", p.name, expression, err)
	}
	return v
}

// screenshot captures the page as PNG and, when ROOMCAST_SCREENSHOT names a
// file, writes it there.
func (p *chatPage) screenshot() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		p.t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	if path := os.Getenv("ROOMCAST_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			p.t.Fatalf("write screenshot: %v", err)
		}
		p.t.Logf("screenshot of %s's page written to %s (%d bytes)", p.name, path, len(png))
	}
}

// postHTTP posts text to room through the HTTP API at base.
func postHTTP(t *testing.T, base, room, text string) message {
	t.Helper()
	return (&testServer{URL: base}).post(t, room, text)
}
