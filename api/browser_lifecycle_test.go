package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts/redistest"
)

// A message's life on the chat page, in two browser contexts (two users,
// each with a storage of their own): ann, in two tabs, posts, edits and
// deletes; bob's page and ann's other tab show the edited text and the
// tombstone. A message in a room bob does not view makes a badge that
// clears when he opens the room, and ann's read in one tab clears the
// badge of her other tab. bob's page rides out a server restart (his
// stream resumes, with the edits and deletes made meanwhile) and a close
// and reopen, and ends with what ann's page shows, badges included.
func TestChatPageLifecycle(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)
	annSrv := startServer(t, serverConfig{Redis: rs})
	bobSrv := startRestartable(t, rs) // bob's server restarts; ann's stays up
	rooms := []string{"life-a", "life-b"}

	annBrowser := newBrowserContext(t, browser)
	bobBrowser := newBrowserContext(t, browser)
	ann := openRooms(t, annBrowser, annSrv.URL, "ann", rooms...)
	annTab := openRooms(t, annBrowser, annSrv.URL, "ann", rooms...) // her other tab
	annTab.name = "ann's other tab"
	bob := openRooms(t, bobBrowser, bobSrv.URL, "bob", rooms...)

	// Edit and delete, in life-a, which all three show.
	ann.send("helo")
	ann.awaitSent("helo")
	id := ann.shownID("life-a", "helo")
	bob.awaitRoomText("life-a", "helo")
	if n := bob.evalInt(fmt.Sprintf(`document.querySelectorAll('li[data-id=%q] .action').length`, id)); n != 0 {
		t.Fatalf("bob's page offers %d changes of ann's message, want none in open mode", n)
	}
	ann.edit(id, "hello")
	for _, p := range []*chatPage{ann, annTab, bob} {
		p.awaitMessage("life-a", id, "hello (edited) v2")
	}
	ann.remove(id)
	for _, p := range []*chatPage{ann, annTab, bob} {
		p.awaitMessage("life-a", id, "message deleted (deleted) v3")
	}

	// Badges: a message in life-b, which nobody views.
	annInB := postAs(t, annSrv.URL, "life-b", "ann", "ann in b")
	bob.awaitUnread("life-a=0 life-b=1")
	for _, p := range []*chatPage{ann, annTab} {
		p.awaitRoomText("life-b", "ann in b")
		if got := p.unread(); got != "life-a=0 life-b=0" {
			t.Fatalf("%s's badges = %s after her own message, want none", p.name, got)
		}
	}
	bob.openRoom("life-b")
	bob.awaitUnread("life-a=0 life-b=0")
	bob.openRoom("life-a")
	// Posting reads the room up to the post.
	postAs(t, annSrv.URL, "life-b", "bob", "bob in b")
	ann.awaitUnread("life-a=0 life-b=1")
	annTab.awaitUnread("life-a=0 life-b=1")
	bob.awaitRoomText("life-b", "bob in b")
	bob.awaitUnread("life-a=0 life-b=0")
	ann.openRoom("life-b") // her read reaches her other tab as a read event
	ann.awaitUnread("life-a=0 life-b=0")
	annTab.awaitUnread("life-a=0 life-b=0")

	// bob's server goes down; ann edits, posts and deletes meanwhile.
	bobSrv.Stop()
	bob.awaitState("reconnecting")
	ann.edit(annInB.ID, "ann in b, fixed")
	ann.send("while bob was away")
	ann.send("taken back")
	ann.awaitSent("taken back")
	ann.remove(ann.shownID("life-b", "taken back"))
	annTab.awaitRoomText("life-b", "message deleted")
	bobSrv.Start()
	bob.awaitState("connected")
	want := ann.roomState("life-b")
	bob.awaitRoomState("life-b", want)
	// One unread: the deleted message does not count.
	bob.awaitUnread("life-a=0 life-b=1")
	annTab.awaitUnread("life-a=0 life-b=0")

	// Closed and opened again, bob's page shows the same from history.
	closeTab(t, bob)
	bob = openRooms(t, bobBrowser, bobSrv.URL, "bob", rooms...)
	bob.awaitRoomState("life-b", want)
	bob.awaitRoomState("life-a", ann.roomState("life-a"))
	bob.awaitUnread("life-a=0 life-b=1")
	bob.openRoom("life-b")
	bob.awaitUnread("life-a=0 life-b=0")
}

// With sign-in on, the page offers to change anyone's message, as the
// token may grant moderate: bob's token does not, and his delete of ann's
// message shows the server's reason and changes nothing; a moderator's
// edit reaches every page.
func TestChatPageLifecycleWithTokens(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)
	srv := startServer(t, serverConfig{Redis: rs, Security: api.Security{
		Tokens: verifier(t, auth.Config{Secret: testSecret}),
	}})
	const room = "life-tokens"
	open := func(name string, claims jwt.MapClaims) *chatPage {
		address := srv.URL + "/#" + url.Values{"room": {room}, "token": {hs256(t, name, claims)}}.Encode()
		p := openPage(t, newBrowserContext(t, browser), address, name)
		p.awaitState("connected")
		return p
	}
	ann := open("ann", nil)
	bob := open("bob", nil)
	mod := open("mod", jwt.MapClaims{"rooms": map[string]any{
		"read": []string{"*"}, "write": []string{"*"}, "moderate": []string{"life-*"}}})

	ann.send("mine")
	id := ann.shownID(room, "mine")
	bob.awaitRoomText(room, "mine")
	bob.clickDelete(id)
	bob.await(`document.getElementById('error').textContent.includes("only the message's author or a moderator")`)
	if got := bob.evalString(`document.getElementById('status').dataset.state`); got != "connected" {
		t.Fatalf("bob's page is %s after a refused delete, want still connected", got)
	}
	mod.awaitRoomText(room, "mine")
	mod.edit(id, "mine (moderated)")
	for _, p := range []*chatPage{ann, bob, mod} {
		p.awaitMessage(room, id, "mine (moderated) (edited) v2")
	}
}

// newBrowserContext makes a browser context of its own (storage, cookies,
// tabs that share streams) and returns a context to open its tabs from.
func newBrowserContext(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return ctx
}

// postAs posts text to room as user through the HTTP API.
func postAs(t *testing.T, base, room, user, text string) message {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"text": text, "user": user})
	resp, err := http.Post(base+"/rooms/"+room+"/messages", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("post to %s: %v", room, err)
	}
	defer resp.Body.Close()
	var m message
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("post to %s: status %d", room, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("post to %s: %v", room, err)
	}
	return m
}

// shownID is the id of the message of room that shows text.
func (p *chatPage) shownID(room, text string) string {
	p.t.Helper()
	id := p.evalString(fmt.Sprintf(`(Array.from(document.querySelectorAll('section.timeline[data-room=%q] li.message'))
		.find(li => li.querySelector('.text').textContent === %q) || {dataset: {id: ''}}).dataset.id`, room, text))
	if id == "" {
		p.t.Fatalf("%s's %s shows no message %q", p.name, room, text)
	}
	return id
}

// edit changes a message of the open room with its Edit button.
func (p *chatPage) edit(id, text string) {
	p.t.Helper()
	li := fmt.Sprintf(`#messages li[data-id=%q]`, id)
	p.run(chromedp.Click(chromedp.CSS(li + " .action.edit")))
	p.run(chromedp.SetValue(chromedp.CSS(li+" .editor textarea"), text),
		chromedp.Click(chromedp.CSS(li+" .editor .save")))
	p.awaitFunc("the edit of "+id+" saved", `(id, text) => {
		const li = document.querySelector('#messages li[data-id="' + id + '"]');
		return li && !li.querySelector('.editor') && li.querySelector('.text').textContent === text;
	}`, id, text)
}

// remove deletes a message of the open room with its Delete button and
// waits for its tombstone.
func (p *chatPage) remove(id string) {
	p.t.Helper()
	p.clickDelete(id)
	p.awaitFunc("the delete of "+id, `(id) => {
		const li = document.querySelector('#messages li[data-id="' + id + '"]');
		return li && li.classList.contains('deleted');
	}`, id)
}

// clickDelete clicks a message's Delete button twice: the first click
// asks again.
func (p *chatPage) clickDelete(id string) {
	p.t.Helper()
	button := fmt.Sprintf(`#messages li[data-id=%q] .action.delete`, id)
	p.run(chromedp.Click(chromedp.CSS(button)))
	p.awaitFunc("delete asks again", fmt.Sprintf(`() => document.querySelector(%q).dataset.confirm === 'true'`, button))
	p.run(chromedp.Click(chromedp.CSS(button)))
}

// shownState is how a message of a timeline shows: text, "(edited)" or
// "(deleted)", and its version.
const shownState = `(li) => li.querySelector('.text').textContent +
	(li.classList.contains('deleted') ? ' (deleted)' : li.querySelector('.edited').textContent ? ' (edited)' : '') +
	' v' + li.dataset.version`

// awaitMessage waits until the message id of room shows as want (see
// shownState).
func (p *chatPage) awaitMessage(room, id, want string) {
	p.t.Helper()
	p.awaitFunc(fmt.Sprintf("message %s of %s as %q", id, room, want), `(room, id, want) => {
		const li = document.querySelector('section.timeline[data-room="' + room + '"] li.message[data-id="' + id + '"]');
		return li && (`+shownState+`)(li) === want;
	}`, room, id, want)
}

// roomState is every message of room's timeline: "id: shownState".
func (p *chatPage) roomState(room string) []string {
	p.t.Helper()
	return evaluate[[]string](p, fmt.Sprintf(`Array.from(
		document.querySelectorAll('section.timeline[data-room=%q] li.message'), li => li.dataset.id + ': ' + (%s)(li))`,
		room, shownState))
}

// awaitRoomState waits until room's timeline is want (see roomState).
func (p *chatPage) awaitRoomState(room string, want []string) {
	p.t.Helper()
	if len(want) == 0 {
		p.t.Fatalf("no state of %s to await", room)
	}
	p.awaitFunc(fmt.Sprintf("%s to show %q", room, want), `(room, want) => JSON.stringify(Array.from(
		document.querySelectorAll('section.timeline[data-room="' + room + '"] li.message'),
		li => li.dataset.id + ': ' + (`+shownState+`)(li))) === want`, room, mustJSON(want))
	if got := p.roomState(room); !slices.Equal(got, want) {
		p.t.Fatalf("%s's %s shows %q, want %q", p.name, room, got, want)
	}
}

// awaitUnread waits until the room list's badges are want (see unread).
func (p *chatPage) awaitUnread(want string) {
	p.t.Helper()
	p.awaitFunc("badges "+want, `(want) => Array.from(document.querySelectorAll('.room-entry'),
		e => e.dataset.room + '=' + (e.dataset.unread || '0')).sort().join(' ') === want`, want)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
