package api_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

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
