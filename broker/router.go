package broker

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ShardRouter finds the Redis node serving a sharded channel, for the
// sharded broker mode (Options.Shards).
type ShardRouter interface {
	// NodeFor returns a client of the master that owns channel's slot.
	NodeFor(ctx context.Context, channel string) (*redis.Client, error)
	// Refresh asks for the slot map to be read again, after a slot moved or
	// a node failed. It does not block.
	Refresh(ctx context.Context)
}

// NewShardRouter returns the router for rdb: the slot map of a
// *redis.ClusterClient, or the one node of a *redis.Client (a standalone
// Redis 7, where SSUBSCRIBE works as well). It returns nil for other clients.
func NewShardRouter(rdb redis.UniversalClient) ShardRouter {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return clusterRouter{c}
	case *redis.Client:
		return singleRouter{c}
	}
	return nil
}

type clusterRouter struct{ c *redis.ClusterClient }

func (r clusterRouter) NodeFor(ctx context.Context, channel string) (*redis.Client, error) {
	return r.c.MasterForKey(ctx, channel)
}

func (r clusterRouter) Refresh(ctx context.Context) { r.c.ReloadState(ctx) }

type singleRouter struct{ c *redis.Client }

func (r singleRouter) NodeFor(context.Context, string) (*redis.Client, error) { return r.c, nil }

func (singleRouter) Refresh(context.Context) {}

// slotOf is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag, modulo 16384. SSUBSCRIBE takes channels of one slot per command.
func slotOf(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
