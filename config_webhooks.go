package main

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"roomcast/api/app"
	"roomcast/broker/chat"
	"roomcast/broker/webhook/signature"
)

// checkWebhooks checks the webhook settings that depend on each other.
// The secret's errors give its length, never its value.
func checkWebhooks(cfg config) error {
	if cfg.WebhookURL == "" {
		return nil
	}
	if !validWebhookURL(cfg.WebhookURL) {
		// Not the value: it may carry a credential.
		return errors.New("WEBHOOK_URL: want an absolute http:// or https:// URL")
	}
	if cfg.WebhookSecret == "" {
		return errors.New("WEBHOOK_SECRET: not set, but WEBHOOK_URL is: receivers verify every webhook with it")
	}
	if _, err := signature.ParseSecret(cfg.WebhookSecret); err != nil {
		return fmt.Errorf("WEBHOOK_SECRET: %w", err)
	}
	_, err := webhookEvents(cfg.WebhookEvents)
	return err
}

// webhookEvents is the event types WEBHOOK_EVENTS names, all of them when
// it is empty.
func webhookEvents(list []string) ([]string, error) {
	var out []string
	for _, e := range list {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !slices.Contains(chat.WebhookEventTypes, e) {
			return nil, fmt.Errorf("WEBHOOK_EVENTS: %q: want a comma-separated list of %s", e,
				strings.Join(chat.WebhookEventTypes, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return slices.Clone(chat.WebhookEventTypes), nil
	}
	return out, nil
}

// validWebhookURL reports whether u is an absolute http(s) URL with a host.
func validWebhookURL(u string) bool {
	parsed, err := url.Parse(u)
	return err == nil && (parsed.Scheme == "http" || parsed.Scheme == "https") && parsed.Host != "" && parsed.Fragment == ""
}

// webhookOptions is the app's webhook settings from a checked cfg.
func webhookOptions(cfg config) app.Webhooks {
	if cfg.WebhookURL == "" {
		return app.Webhooks{}
	}
	secret, _ := signature.ParseSecret(cfg.WebhookSecret) // checked by parseConfig
	events, _ := webhookEvents(cfg.WebhookEvents)
	return app.Webhooks{URL: cfg.WebhookURL, Secret: secret, Events: events, MaxAge: cfg.WebhookMaxAge,
		Lease: cfg.WebhookLease, Timeout: cfg.WebhookTimeout}
}
