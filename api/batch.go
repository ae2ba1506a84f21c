package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/broker/chat"
)

const (
	maxBatchMessages  = 1000     // items of one {"messages": [...]}
	maxBroadcastRooms = 100      // rooms of one {"rooms": [...]}
	maxBatchBodyBytes = 64 << 20 // whatever MAX_MESSAGE_BYTES allows one post
)

// postMessages stores each message of a batch atomically in its room, as a
// post does, and answers 207 with one result per message, in order. A
// batch with any message a single post would refuse as malformed is a 400
// and stores nothing: the results only tell what the store decided.
// POST /messages
func (h *Handler) postMessages(c echo.Context) error {
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readBody(c, min(int64(maxBatchMessages)*h.maxBodyBytes(), maxBatchBodyBytes))
	if err != nil {
		return err
	}
	posts, err := decodeBatch(body, h.postLimits())
	if err != nil {
		return err
	}
	for i := range posts {
		if posts[i].User, err = postingUser(c, posts[i].User); err != nil {
			return err
		}
		// The backend's: read-only rooms and slow mode do not hold it.
		posts[i].Moderator = true
	}
	results := h.Store.PostMany(c.Request().Context(), posts)

	out := bytes.NewBufferString(`{"results":[`)
	for i, r := range results {
		if i > 0 {
			out.WriteByte(',')
		}
		if r.Err == nil {
			h.Metrics.Posted(r.Posted.Replayed)
			out.WriteString(`{"status":201,`)
			if r.Posted.Replayed {
				out.WriteString(`"replayed":true,`)
			}
			out.WriteString(`"message":`)
			out.Write(r.Posted.JSON)
			out.WriteByte('}')
			continue
		}
		p := problemFor(r.Err)
		if p.Status >= 500 {
			h.log.Error("batch post failed", "room", posts[i].Room, "status", p.Status, "err", r.Err)
		}
		problem, _ := json.Marshal(p)
		fmt.Fprintf(out, `{"status":%d,"problem":%s}`, p.Status, problem)
	}
	out.WriteString("]}\n")
	return c.Blob(http.StatusMultiStatus, echo.MIMEApplicationJSON, out.Bytes())
}

// decodeBatch reads a batch body: {"rooms": [...], "text", "user"?,
// "metadata"?} for one message to many rooms, or {"messages": [{"room",
// "text", "user"?, "metadata"?, "reply_to"?, "idempotency_key"?}, ...]},
// each message checked as a post's body is.
func decodeBatch(body []byte, lim postLimits) ([]chat.Post, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid batch", detail) }
	if !utf8.Valid(body) {
		return nil, invalid("the body is not valid UTF-8")
	}
	fields, err := oneObject(body)
	if err != nil {
		return nil, invalid(err.Error())
	}
	if raw, ok := fields["messages"]; ok {
		if len(fields) > 1 {
			return nil, invalid(`"messages" comes alone: each message names its room, text and user`)
		}
		// All messages in one pass; only a batch with one that is not an
		// object looks at them one by one, to name it.
		var messages []map[string]json.RawMessage
		if json.Unmarshal(raw, &messages) != nil || slices.ContainsFunc(messages, func(m map[string]json.RawMessage) bool { return m == nil }) {
			var each []json.RawMessage
			if json.Unmarshal(raw, &each) == nil {
				for i, m := range each {
					if _, err := oneObject(m); err != nil {
						return nil, invalid(fmt.Sprintf("messages[%d]: not a JSON object", i))
					}
				}
			}
			messages = nil
		}
		if len(messages) == 0 || len(messages) > maxBatchMessages {
			return nil, invalid(fmt.Sprintf(`"messages" must be an array of 1 to %d messages`, maxBatchMessages))
		}
		posts := make([]chat.Post, len(messages))
		for i, m := range messages {
			if posts[i], err = decodeBatchMessage(m, lim); err != nil {
				return nil, invalid(fmt.Sprintf("messages[%d]: %s", i, err))
			}
		}
		return posts, nil
	}
	raw, ok := fields["rooms"]
	if !ok {
		return nil, invalid(`the body needs "rooms" (one message to many rooms) or "messages"`)
	}
	var rooms []string
	if err := json.Unmarshal(raw, &rooms); err != nil || len(rooms) == 0 || len(rooms) > maxBroadcastRooms {
		return nil, invalid(fmt.Sprintf(`"rooms" must be an array of 1 to %d room ids`, maxBroadcastRooms))
	}
	delete(fields, "rooms")
	if _, ok := fields["reply_to"]; ok {
		return nil, invalid(`"reply_to" names a message of one room: send {"messages": [...]}`)
	}
	post, err := batchPostFields(fields, lim)
	if err != nil {
		return nil, invalid(err.Error())
	}
	posts := make([]chat.Post, len(rooms))
	seen := make(map[string]bool, len(rooms))
	for i, room := range rooms {
		switch {
		case !chat.ValidRoom(room):
			return nil, invalid(fmt.Sprintf("rooms[%d] is not a room id", i))
		case seen[room]:
			return nil, invalid(fmt.Sprintf("rooms[%d] names %s again", i, room))
		}
		seen[room] = true
		posts[i] = post
		posts[i].Room = room
	}
	return posts, nil
}

// decodeBatchMessage reads one message of {"messages": [...]}: a post body
// with its "room" and "idempotency_key" beside it. Its errors are details.
func decodeBatchMessage(fields map[string]json.RawMessage, lim postLimits) (chat.Post, error) {
	var room, key string
	if value, ok := fields["room"]; !ok {
		return chat.Post{}, errors.New(`"room" is required`)
	} else if json.Unmarshal(value, &room) != nil || !chat.ValidRoom(room) {
		return chat.Post{}, errors.New(`"room" is not a room id`)
	}
	if value, ok := fields["idempotency_key"]; ok {
		if json.Unmarshal(value, &key) != nil || !validIdempotencyKey(key) {
			return chat.Post{}, errors.New(`"idempotency_key" must be 1 to 128 printable ASCII characters without spaces`)
		}
	}
	delete(fields, "room")
	delete(fields, "idempotency_key")
	post, err := batchPostFields(fields, lim)
	if err != nil {
		return chat.Post{}, err
	}
	post.Room, post.IdempotencyKey = room, key
	return post, nil
}

// batchPostFields checks the members of a post body that remain once a batch
// took its own, with the rules of a single post; its error is the detail.
func batchPostFields(fields map[string]json.RawMessage, lim postLimits) (chat.Post, error) {
	post, err := postFields(fields, lim)
	var p *Problem
	if errors.As(err, &p) {
		return chat.Post{}, errors.New(p.Detail)
	}
	return post, err
}

// oneObject decodes data that must be exactly one JSON object.
func oneObject(data []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		if err == nil {
			return nil, errors.New("the body must be a JSON object")
		}
		return nil, errors.New(jsonErrorDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("the body must hold exactly one JSON object")
	}
	return fields, nil
}
