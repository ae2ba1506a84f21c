package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roomcast/api/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Example posts a message, pages back through a room's history and follows
// the room live, using only the generated client. Run a server first with
// `go run .`.
func Example() {
	ctx := context.Background()
	c, err := client.NewClientWithResponses("http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}

	user := "ada"
	posted, err := c.PostMessageWithResponse(ctx, "lobby", nil, client.NewMessage{Text: "Hello, room!", User: &user})
	if err != nil {
		log.Fatal(err)
	}
	if posted.JSON201 == nil {
		log.Fatalf("post: %s", posted.Body)
	}
	fmt.Println("posted", posted.JSON201.Id)

	// Page backwards from the newest messages.
	params := &client.ListMessagesParams{}
	for {
		page, err := c.ListMessagesWithResponse(ctx, "lobby", params)
		if err != nil {
			log.Fatal(err)
		}
		if page.JSON200 == nil {
			log.Fatalf("history: %s", page.Body)
		}
		for _, m := range page.JSON200.Messages {
			fmt.Println(m.Seq, m.User, m.Text)
		}
		if !page.JSON200.HasMore {
			break
		}
		params.Before = &page.JSON200.Messages[0].Id
	}

	// Follow the room from the message just posted. The client returns the
	// stream unread; each event is "id:", "event:" and "data:" lines ended
	// by a blank line.
	resp, err := c.StreamRoom(ctx, "lobby", &client.StreamRoomParams{LastEventID: &posted.JSON201.Id})
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var event, data string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "":
			if event == "message" {
				var m client.Message
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					log.Fatal(err)
				}
				fmt.Println(m.Time.Format("15:04:05"), m.User, m.Text)
			}
			event, data = "", ""
		}
	}
}

// ExampleFollow follows a room live with the SDK's follower, which
// reconnects on its own and resumes where it left off. Run a server first
// with `go run .`.
func ExampleFollow() {
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	err := client.Follow(ctx, "http://localhost:8080", "lobby", client.FollowOptions{},
		func(ev client.Event) error {
			switch ev.Type {
			case client.EventMessage:
				m, err := ev.Message()
				if err != nil {
					return err
				}
				fmt.Println(m.Time.Format("15:04:05"), m.User, m.Text)
			case client.EventReset:
				r, err := ev.Reset()
				if err != nil {
					return err
				}
				fmt.Println("some messages were missed:", r.Detail)
			}
			return nil // ignore event types this program does not know
		})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Fatal(err)
	}
}
