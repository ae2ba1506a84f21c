// Package signature signs webhook requests as the Standard Webhooks
// specification defines: an HMAC-SHA256 over "<id>.<timestamp>.<body>"
// with a secret given as "whsec_" and its base64, sent as "v1,<base64>" in
// the webhook-signature header beside webhook-id and webhook-timestamp.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed request.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Secret is a signing key.
type Secret struct{ key []byte }

// The specification asks for 24 to 64 random bytes.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
)

// ParseSecret reads a secret in its "whsec_<base64>" form. Its errors name
// lengths, never the secret.
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return Secret{}, errors.New(`want "whsec_" followed by the base64 of 24 to 64 random bytes`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, errors.New(`the part after "whsec_" is not standard base64`)
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return Secret{}, fmt.Errorf("%d bytes after base64 decoding: want %d to %d", len(key), minSecretBytes, maxSecretBytes)
	}
	return Secret{key: key}, nil
}

// Sign returns the webhook-signature value of body sent with id at ts.
// id must not contain ".".
func (s Secret) Sign(id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SetHeaders sets the three headers of body sent as id at ts on h.
func (s Secret) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
}
