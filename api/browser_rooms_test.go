package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"roomcast/redisscripts/redistest"
)

// The chat page in several rooms at once, in headless Debian chromium: two
// pages in three rooms exchange messages over one stream each and count
// what they have not read, and a server restart while posts go on in all three rooms leaves each page with
// every message of every room exactly once.
func TestChatPageRooms(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)

	t.Run("ExchangeOverOneStream", func(t *testing.T) {
		rooms := []string{"alpha", "beta", "gamma"}
		srv := startServer(t, serverConfig{Redis: rs})
		ann := openRooms(t, browser, srv.URL, "ann", rooms...)
		bob := openRooms(t, browser, srv.URL, "bob", rooms...)

		for _, room := range rooms {
			ann.openRoom(room)
			ann.send("ann in " + room)
		}
		for _, room := range rooms {
			bob.awaitRoomText(room, "ann in "+room)
		}
		// bob has alpha open: what came in the others is unread until opened.
		if got := bob.unread(); got != "alpha=0 beta=1 gamma=1" {
			t.Fatalf("bob's unread counts = %s, want beta and gamma 1", got)
		}
		for _, room := range rooms {
			bob.openRoom(room)
			bob.send("bob in " + room)
			ann.awaitRoomText(room, "bob in "+room)
		}
		if got := bob.unread(); got != "alpha=0 beta=0 gamma=0" {
			t.Fatalf("bob's unread counts after reading = %s, want 0", got)
		}
		for _, p := range []*chatPage{ann, bob} {
			for _, room := range rooms {
				got := p.roomTexts(room)
				if want := []string{"ann in " + room, "bob in " + room}; !slices.Equal(got, want) {
					t.Fatalf("%s's %s shows %q, want %q", p.name, room, got, want)
				}
			}
			// Joining three rooms from the address opened one stream.
			p.checkStreams(1)
		}
	})

	t.Run("EveryMessageOnceAcrossRestart", func(t *testing.T) {
		rooms := []string{"restart-a", "restart-b", "restart-c"}
		srv := startRestartable(t, rs)
		other := startServer(t, serverConfig{Redis: rs}) // takes the posts while srv is down
		ann := openRooms(t, browser, srv.URL, "ann", rooms...)
		bob := openRooms(t, browser, srv.URL, "bob", rooms...)

		posts := startPosting(t, other.URL, rooms)
		posts.awaitCount(6)
		// Each page has heard of every room, so its cursor resumes them all.
		for _, p := range []*chatPage{ann, bob} {
			for _, room := range rooms {
				p.awaitWithin(20*time.Second, "a message in "+room,
					`(room) => document.querySelector('section.timeline[data-room="' + room + '"] li.message') !== null`, room)
			}
		}
		srv.Stop()
		ann.awaitState("reconnecting")
		bob.awaitState("reconnecting")
		posts.awaitCount(posts.count() + 6)
		srv.Start()
		ann.awaitState("connected")
		bob.awaitState("connected")
		posts.awaitCount(posts.count() + 6)
		sent := posts.stop()

		for _, p := range []*chatPage{ann, bob} {
			for _, room := range rooms {
				want := sent[room]
				p.awaitWithin(30*time.Second, fmt.Sprintf("all %d messages of %s", len(want), room),
					`(room, n) => document.querySelectorAll('section.timeline[data-room="' + room + '"] li.message').length >= n`,
					room, len(want))
				if got := p.roomIDs(room); !slices.Equal(got, want) {
					t.Fatalf("%s's %s shows ids %v, want each of %v once, in order", p.name, room, got, want)
				}
			}
		}
	})
}

// A page sees who else is in its open room: another page joins, types and
// leaves it (while staying in another room). This needs the server to
// relay join, leave and typing events on GET /stream.
func TestChatPageSeesJoinTypingAndLeave(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)
	// Rooms of their own: nobody from another test is present there.
	rooms := []string{"alpha", "beta", "gamma"}
	for i := range rooms {
		rooms[i] = "seen-" + rooms[i]
	}
	srv := startServer(t, serverConfig{Redis: rs, PresenceGrace: 500 * time.Millisecond, PresenceBeat: 200 * time.Millisecond})
	ann := openRooms(t, browser, srv.URL, "ann", rooms...)
	ann.awaitOnline("ann")

	cid := openRooms(t, browser, srv.URL, "cid", rooms[0], rooms[1])
	ann.awaitOnline("ann", "cid")

	cid.run(chromedp.SendKeys(chromedp.ID("text"), "hel"))
	ann.awaitTyping("cid is typing…")
	ann.awaitTyping("") // shown for a few seconds only
	ann.run(chromedp.SendKeys(chromedp.ID("text"), "hi"))
	cid.awaitTyping("ann is typing…")
	if got := ann.evalString(`document.getElementById('typing').textContent`); strings.Contains(got, "ann") {
		t.Fatalf("ann's page shows her own typing: %q", got)
	}

	// cid leaves the first room: a stream of the second alone replaces hers.
	cid.run(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.room-entry[data-room=%q] .leave-room`, rooms[0]))))
	cid.awaitFunc("only "+rooms[1]+" left", `(room) => document.querySelectorAll('.room-entry').length === 1 &&
		document.title.startsWith(room)`, rooms[1])
	ann.awaitOnline("ann")
	cid.checkStreams(2)
	ann.checkStreams(1)
	ann.openRoom(rooms[1]) // still there
	ann.awaitOnline("ann", "cid")
}

// The page shows what join, leave and typing events say, checked with
// events handed to its stream's EventSource: others online and typing in
// the open room, not its own typing nor another room's.
func TestChatPageHandlesPresenceEvents(t *testing.T) {
	srv := startServer(t, serverConfig{})
	browser := startBrowser(t)
	ann := openRooms(t, browser, srv.URL, "ann", "x", "y")
	emit := func(name, room, user string) {
		ann.t.Helper()
		ann.evalString(fmt.Sprintf(`window.streams.current.dispatchEvent(new MessageEvent(%q,
			{data: JSON.stringify({room: %q, user: %q, time: new Date().toISOString()})})), ''`, name, room, user))
	}
	online := func(user string, want bool) {
		t.Helper()
		ann.awaitFunc(fmt.Sprintf("%s online: %v", user, want),
			`(user, want) => Array.from(document.querySelectorAll('#online li')).some(li => li.textContent === user) === want`, user, want)
	}
	emit("join", "x", "cid")
	online("cid", true)
	emit("typing", "y", "dan") // another room
	emit("typing", "x", "ann") // herself
	emit("typing", "x", "cid")
	ann.awaitTyping("cid is typing…")
	emit("typing", "x", "eve")
	ann.awaitTyping("cid and eve are typing…")
	ann.awaitTyping("") // a few seconds later
	emit("leave", "x", "cid")
	online("cid", false)
	// Opening a room loads its presence from the server, which knows no
	// "dan": the join comes after, as a real one does.
	ann.openRoom("y")
	emit("join", "y", "dan")
	online("dan", true)
}

// streamCounter replaces the page's EventSource with one that counts the
// streams it opens and those open now, in window.streams, with the id of
// the last message they delivered.
const streamCounter = `(() => {
	const Native = window.EventSource;
	const streams = { opened: 0, open: 0, mostOpen: 0, urls: [] };
	window.streams = streams;
	window.EventSource = class extends Native {
		constructor(url, init) {
			super(url, init);
			this.counted = true;
			streams.opened++;
			streams.open++;
			streams.mostOpen = Math.max(streams.mostOpen, streams.open);
			streams.urls.push(String(url));
			streams.current = this;
			this.addEventListener('message', (ev) => { streams.lastEventId = ev.lastEventId; });
		}
		close() {
			if (this.counted) {
				this.counted = false;
				streams.open--;
			}
			super.close();
		}
	};
})();`

// openRooms opens the chat page joined to rooms as name, with its streams
// counted, and waits until it is connected.
func openRooms(t *testing.T, browser context.Context, base, name string, rooms ...string) *chatPage {
	t.Helper()
	count := chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: streamCounter})
		return err
	})
	p := openPage(t, browser, base+"/#"+url.Values{"room": rooms, "name": {name}}.Encode(), name, count)
	p.awaitState("connected")
	return p
}

// checkStreams fails the test unless the page opened n streams, all of
// them multi-room, never two at once, and one is open now.
func (p *chatPage) checkStreams(n int) {
	p.t.Helper()
	type streams struct {
		Opened   int      `json:"opened"`
		Open     int      `json:"open"`
		MostOpen int      `json:"mostOpen"`
		URLs     []string `json:"urls"`
	}
	got := evaluate[streams](p, `window.streams`)
	if got.Opened != n || got.Open != 1 || got.MostOpen != 1 {
		p.t.Fatalf("%s's page opened %d streams, %d open now, at most %d at once (%q); want %d, 1, 1",
			p.name, got.Opened, got.Open, got.MostOpen, got.URLs, n)
	}
	for _, u := range got.URLs {
		if !strings.HasPrefix(u, "/stream?rooms=") {
			p.t.Fatalf("%s's page opened stream %s, want /stream?rooms=…", p.name, u)
		}
	}
}

// openRoom shows room, as a click on it in the room list does.
func (p *chatPage) openRoom(room string) {
	p.t.Helper()
	p.run(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.room-entry[data-room=%q] .open-room`, room))))
	p.awaitFunc("room "+room+" open", `(room) => document.getElementById('messages').parentElement.dataset.room === room`, room)
}

// awaitRoomText waits until room's timeline shows a message with exactly
// this text, whether the room is open or not.
func (p *chatPage) awaitRoomText(room, text string) {
	p.t.Helper()
	p.awaitFunc(fmt.Sprintf("message %q in %s", text, room), `(room, text) => Array.from(
		document.querySelectorAll('section.timeline[data-room="' + room + '"] .message .text')).some(e => e.textContent === text)`,
		room, text)
}

// awaitOnline waits until the open room lists exactly users as online.
func (p *chatPage) awaitOnline(users ...string) {
	p.t.Helper()
	p.awaitWithin(20*time.Second, fmt.Sprintf("online %q", users),
		`(want) => Array.from(document.querySelectorAll('#online li'), li => li.textContent).join(',') === want`,
		strings.Join(users, ","))
}

// awaitTyping waits until the typing line says text.
func (p *chatPage) awaitTyping(text string) {
	p.t.Helper()
	// As a literal: an empty string is not passed as an argument.
	p.awaitFunc(fmt.Sprintf("typing line %q", text),
		fmt.Sprintf(`() => document.getElementById('typing').textContent === %q`, text))
}

// unread is the room list's unread counts, as "room=n …".
func (p *chatPage) unread() string {
	p.t.Helper()
	return p.evalString(`Array.from(document.querySelectorAll('.room-entry'),
		e => e.dataset.room + '=' + (e.dataset.unread || '0')).sort().join(' ')`)
}

func (p *chatPage) roomTexts(room string) []string {
	p.t.Helper()
	return evaluate[[]string](p, fmt.Sprintf(`Array.from(
		document.querySelectorAll('section.timeline[data-room=%q] li.message .text'), e => e.textContent)`, room))
}

func (p *chatPage) roomIDs(room string) []string {
	p.t.Helper()
	return evaluate[[]string](p, fmt.Sprintf(`Array.from(
		document.querySelectorAll('section.timeline[data-room=%q] li.message'), li => li.dataset.id)`, room))
}

// poster posts to its rooms in turn, through the HTTP API, until stopped.
type poster struct {
	t    *testing.T
	mu   sync.Mutex
	sent map[string][]string // room → ids in the order stored
	n    int
	err  error
	quit chan struct{}
	done chan struct{}
}

func startPosting(t *testing.T, base string, rooms []string) *poster {
	t.Helper()
	p := &poster{t: t, sent: make(map[string][]string), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// Paced, so that an outage's posts fit in one page of history.
		pace := time.NewTicker(50 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.quit:
				return
			case <-pace.C:
			}
			room := rooms[i%len(rooms)]
			m, err := postJSON(base, room, fmt.Sprintf("post %d", i))
			p.mu.Lock()
			if err == nil {
				p.sent[room] = append(p.sent[room], m.ID)
				p.n++
			} else {
				p.err = err
			}
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *poster) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// awaitCount waits until n posts were stored.
func (p *poster) awaitCount(n int) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		got, err := p.n, p.err
		p.mu.Unlock()
		switch {
		case err != nil:
			p.t.Fatalf("posting: %v", err)
		case got >= n:
			return
		case time.Now().After(deadline):
			p.t.Fatalf("%d posts stored, want %d", got, n)
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the posting and returns the ids stored, by room.
func (p *poster) stop() map[string][]string {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		p.t.Fatalf("posting: %v", p.err)
	}
	return p.sent
}

// postJSON posts text to room at base and returns the stored message.
func postJSON(base, room, text string) (message, error) {
	var m message
	resp, err := http.Post(base+"/rooms/"+room+"/messages", "application/json",
		strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return m, fmt.Errorf("post to %s: status %d", room, resp.StatusCode)
	}
	return m, json.NewDecoder(resp.Body).Decode(&m)
}
