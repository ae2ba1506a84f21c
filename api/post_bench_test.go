package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"roomcast/api"
	"roomcast/broker/chat"
)

// postStore answers every post with the same stored message, so that the
// benchmark measures the API's own work per post: routing, guards,
// middleware, decoding and the answer.
type postStore struct{ posted chat.Posted }

func (s postStore) Post(context.Context, chat.Post) (chat.Posted, error) { return s.posted, nil }

func (s postStore) PostMany(_ context.Context, posts []chat.Post) []chat.PostResult {
	results := make([]chat.PostResult, len(posts))
	for i := range results {
		results[i].Posted = s.posted
	}
	return results
}

func (s postStore) History(context.Context, string, chat.Query) (chat.Page, error) {
	return chat.Page{}, nil
}

func (s postStore) Message(context.Context, string, chat.ID) ([]byte, error) {
	return nil, chat.ErrUnknownMessage
}

func (s postStore) Change(context.Context, chat.Change) (chat.Changed, error) {
	return chat.Changed{}, chat.ErrUnknownMessage
}

// BenchmarkPostMessage is one POST /rooms/{room}/messages through the
// whole Echo handler, as main registers it, against a store that answers
// at once. The Redis round trip and the network are not in it: bench/load's
// publish preset measures those.
func BenchmarkPostMessage(b *testing.B) {
	stored := `{"id":"mx2k9c1q7a-1","seq":1,"room":"lobby","user":"load","text":"` + strings.Repeat("x", 200) + `","time":"2026-11-26T01:12:03.417Z"}`
	id, err := chat.IDOf([]byte(stored))
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	api.New(api.Options{Store: postStore{chat.Posted{ID: id, JSON: []byte(stored)}}, MaxMessageBytes: 4096}).Register(e)
	body := `{"user":"load","text":"lt:1764000000000000000:42:` + strings.Repeat("x", 170) + `"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/rooms/lobby/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("POST = %d %s", rec.Code, rec.Body)
		}
	}
}
