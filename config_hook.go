package main

import (
	"errors"
	"fmt"
	"strings"

	"roomcast/api/app"
	"roomcast/broker/chat"
	"roomcast/broker/webhook/signature"
)

// checkPublishHook checks the before-publish hook's settings. The secret's
// errors give its length, never its value.
func checkPublishHook(cfg config) error {
	if cfg.PublishHookURL == "" {
		return nil
	}
	if !validWebhookURL(cfg.PublishHookURL) {
		return errors.New("PUBLISH_HOOK_URL: want an absolute http:// or https:// URL")
	}
	if cfg.PublishHookTimeout <= 0 {
		return fmt.Errorf("PUBLISH_HOOK_TIMEOUT: invalid value %q: want a positive duration", cfg.PublishHookTimeout)
	}
	if cfg.PublishHookOnError != "reject" && cfg.PublishHookOnError != "accept" {
		return fmt.Errorf("PUBLISH_HOOK_ON_ERROR: invalid value %q: want reject or accept", cfg.PublishHookOnError)
	}
	if _, err := publishHookRooms(cfg.PublishHookRooms); err != nil {
		return err
	}
	name, secret := publishHookSecret(cfg)
	if secret == "" {
		return errors.New("PUBLISH_HOOK_SECRET: not set, nor WEBHOOK_SECRET, but PUBLISH_HOOK_URL is: the backend verifies every question with it")
	}
	if _, err := signature.ParseSecret(secret); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// publishHookSecret is the hook's signing key and the variable it came from.
func publishHookSecret(cfg config) (name, secret string) {
	if cfg.PublishHookSecret != "" {
		return "PUBLISH_HOOK_SECRET", cfg.PublishHookSecret
	}
	return "WEBHOOK_SECRET", cfg.WebhookSecret
}

// publishHookRooms is the room patterns of PUBLISH_HOOK_ROOMS: room ids,
// or a room id prefix and "*".
func publishHookRooms(list []string) ([]string, error) {
	var out []string
	for _, p := range list {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if prefix := strings.TrimSuffix(p, "*"); prefix != "" && !chat.ValidRoom(prefix) {
			return nil, fmt.Errorf("PUBLISH_HOOK_ROOMS: %q: want room ids or room id prefixes ending in *", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("PUBLISH_HOOK_ROOMS: no pattern: want room ids or prefixes ending in *, such as *")
	}
	return out, nil
}

// publishHookOptions is the app's hook settings from a checked cfg.
func publishHookOptions(cfg config) app.PublishHook {
	if cfg.PublishHookURL == "" {
		return app.PublishHook{}
	}
	_, raw := publishHookSecret(cfg)
	secret, _ := signature.ParseSecret(raw) // checked by parseConfig
	rooms, _ := publishHookRooms(cfg.PublishHookRooms)
	return app.PublishHook{URL: cfg.PublishHookURL, Secret: secret, Timeout: cfg.PublishHookTimeout,
		AcceptOnError: cfg.PublishHookOnError == "accept", Rooms: rooms}
}
