package api_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"roomcast/redisscripts/redistest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests' toolbox: a headless chromium and a chat page driven
// in it.

// startBrowser starts headless chromium with a fresh profile and returns a
// context of its first tab; the browser exits when the test ends. Without
// chromium the test is skipped, except under CI=true, where it fails.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	redistest.SkipIfShort(t, "drives chromium")
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
