package redisscripts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// Client is the go-redis client a Store runs on: a *redis.Client or a
// *redis.ClusterClient.
type Client interface {
	redis.Cmdable
	processor
}

// Store reads and writes room messages through the Lua scripts.
type Store struct {
	rdb            Client
	keys           Keys
	historyMax     int
	idempotencyTTL time.Duration
	roomTTL        time.Duration
	posts          *batcher // the post script's calls
	claims         *batcher // the webhook claim script's calls
	sharded        bool
	// readReceiptsMax is the most present users a room may have for its
	// read events to be receipts for everyone (READ_RECEIPTS_MAX_WATCHERS).
	readReceiptsMax int
	webhooks        webhookEvents
}

// StoreOptions are a Store's limits.
type StoreOptions struct {
	HistoryMax     int           // messages kept per room, at least 1
	IdempotencyTTL time.Duration // how long an idempotency key is remembered
	RoomTTL        time.Duration // how long a room is kept after its last post; 0 for ever
	// Sharded publishes room messages with SPUBLISH on Keys.ShardChannel
	// (sharded Pub/Sub, BROKER_MODE=sharded) instead of PUBLISH on
	// Keys.Channel. Every instance of a deployment must agree on it.
	Sharded bool
	// ReadReceiptsMaxWatchers is the most present users a room may have
	// for a read marker's move to be a read receipt for its other members;
	// 0 turns receipts off.
	ReadReceiptsMaxWatchers int
	// WebhookEvents are the webhook event types (chat.WebhookEventTypes)
	// that posts and presence changes put in their room's outbox, in the
	// same script; empty: none, webhooks are off.
	WebhookEvents []string
}

// NewStore returns a Store on rdb for the deployment keys describes. On a
// Redis Cluster client the keys have a bucket per slot whatever keys
// says, since the post script writes the room's bucket in its slot.
func NewStore(rdb Client, keys Keys, opts StoreOptions) *Store {
	if _, cluster := rdb.(*redis.ClusterClient); cluster {
		keys = keys.PerSlotBuckets()
	}
	return &Store{rdb: rdb, keys: keys, historyMax: opts.HistoryMax,
		idempotencyTTL: opts.IdempotencyTTL, roomTTL: opts.RoomTTL, sharded: opts.Sharded,
		posts: newBatcher(rdb, postMessageScript), readReceiptsMax: opts.ReadReceiptsMaxWatchers,
		claims: newBatcher(rdb, webhookClaimScript), webhooks: newWebhookEvents(opts.WebhookEvents)}
}

// wrapRedisError marks connection-level failures as ErrUnavailable so that
// callers can answer "try again" instead of "internal error". A connection
// that Redis closed with a call in flight reads as EOF.
func wrapRedisError(op string, err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		isLoading(err) {
		return fmt.Errorf("%s: %w: %w", op, chat.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isLoading(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && (redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err))
}
