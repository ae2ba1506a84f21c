package app

import (
	"time"

	"roomcast/api"
	"roomcast/api/hook"
	"roomcast/broker/webhook/signature"
)

// PublishHook configures the before-publish hook (PUBLISH_HOOK_*).
type PublishHook struct {
	URL           string // "": off
	Secret        signature.Secret
	Timeout       time.Duration
	AcceptOnError bool     // PUBLISH_HOOK_ON_ERROR=accept
	Rooms         []string // room patterns screened
}

// client is the hook's client, nil when it is off.
func (p PublishHook) client() api.PublishHook {
	if p.URL == "" {
		return nil
	}
	return hook.New(hook.Options{URL: p.URL, Secret: p.Secret, Timeout: p.Timeout, Rooms: p.Rooms})
}
