package signature_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"roomcast/broker/webhook/signature"
	"roomcast/broker/webhook/webhooktest"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/2ihN9d+oBI="

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name, in, want string // want: part of the error; "" for none
	}{
		{name: "OK", in: secret},
		{name: "no prefix", in: strings.TrimPrefix(secret, "whsec_"), want: `want "whsec_"`},
		{name: "not base64", in: "whsec_!!!!", want: "not standard base64"},
		{name: "too short", in: "whsec_c2hvcnQ=", want: "5 bytes"},
		{name: "too long", in: "whsec_" + strings.Repeat("QUFB", 22), want: "66 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signature.ParseSecret(tc.in)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ParseSecret: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ParseSecret error %v, want one with %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), tc.in[min(len(tc.in), 6):]):
				t.Fatalf("the error %q shows the secret", err)
			}
		})
	}
}

// TestSignVerifiesWithNPM has the standardwebhooks npm package verify what
// Sign made, bodies with every kind of byte included.
func TestSignVerifiesWithNPM(t *testing.T) {
	s, err := signature.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []webhooktest.Request
	for i, body := range []string{`{}`, `{"type":"message.created","data":{"text":"héllo \"x\"\n😀"}}`, `{"text":"` + strings.Repeat("x", 70000) + `"}`} {
		at := time.Now().Add(time.Duration(-i) * time.Second)
		id := "evt_room~a_1700000000000-" + string(rune('0'+i))
		reqs = append(reqs, webhooktest.Request{ID: id, Timestamp: strconv.FormatInt(at.Unix(), 10),
			Signature: s.Sign(id, at, []byte(body)), Body: body})
	}
	webhooktest.VerifyWithNPM(t, secret, reqs)

	// And it refuses what it must: the check can fail.
	bad := reqs[1]
	bad.Body += " "
	t.Run("tampered", func(t *testing.T) {
		ft := &fakeTB{TB: t}
		func() {
			defer func() { _ = recover() }()
			webhooktest.VerifyWithNPM(ft, secret, []webhooktest.Request{bad})
		}()
		if !ft.failed {
			t.Fatal("a tampered body verified")
		}
	})
}

// fakeTB records a failure instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
