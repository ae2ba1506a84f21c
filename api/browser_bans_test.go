package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/redisscripts/redistest"
)

// TestChatPageLeavesABannedRoom: a page whose user is banned from one of
// its rooms leaves that room and says why, and keeps the others: it does
// not reopen a stream naming the room, which the server would refuse.
func TestChatPageLeavesABannedRoom(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)
	srv := startServer(t, serverConfig{Redis: rs})
	rooms := []string{"banned-here", "banned-not"}
	eve := openRooms(t, browser, srv.URL, "eve", rooms...)

	resp, body := srv.do(t, http.MethodPut, "/rooms/"+rooms[0]+"/bans/eve", `{"reason":"spam"}`,
		"Content-Type", "application/json")
	expectStatus(t, resp, body, http.StatusCreated, "")
	eve.awaitFunc("only "+rooms[1]+" left", `(room) => document.querySelectorAll('.room-entry').length === 1 &&
		document.querySelector('.room-entry').dataset.room === room`, rooms[1])
	eve.awaitFunc("the ban explained", `(want) => document.getElementById('error').textContent === want`,
		fmt.Sprintf("You were banned from %s: spam.", rooms[0]))
	eve.awaitState("connected")
	srv.post(t, rooms[1], "still here")
	eve.openRoom(rooms[1])
	eve.awaitText("still here")
	eve.checkStreams(2) // the first, and the one without the banned room
}

// TestChatPageEndsARevokedSession: a page whose token is revoked stops
// and asks for a new token, rather than reconnect with the revoked one.
func TestChatPageEndsARevokedSession(t *testing.T) {
	rs := redistest.Start(t)
	browser := startBrowser(t)
	sec := controlSecurity(t)
	sec.JWTCookie = "roomcast_token"
	srv := startServer(t, serverConfig{Redis: rs, Security: sec})
	token := hs256(t, "dave", jwt.MapClaims{"jti": "t-dave"})
	dave := openPage(t, browser, srv.URL+"/#"+url.Values{"room": {"revoked-here"}, "name": {"dave"}, "token": {token}}.Encode(), "dave")
	dave.awaitState("connected")

	resp, body := srv.do(t, http.MethodPost, "/admin/tokens/revoke", `{"jti":"t-dave"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	dave.awaitState("signin")
	dave.awaitFunc("the revocation explained", `(want) => document.getElementById('error').textContent === want`,
		"Your token was revoked. Paste a new one and join again.")
}
