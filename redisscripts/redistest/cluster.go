package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartCluster starts a Redis Cluster of n primaries (no replicas), with
// the 16384 hash slots split evenly, and waits until every node reports the
// cluster healthy. It fails or skips like Start.
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = Start(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const slots = 16384
	for i, node := range nodes {
		c := redis.NewClient(&redis.Options{Addr: node.Addr})
		first, last := i*slots/n, (i+1)*slots/n-1
		err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err()
		if err == nil && i > 0 {
			host, port, _ := strings.Cut(nodes[0].Addr, ":")
			err = c.Do(ctx, "CLUSTER", "MEET", host, port).Err()
		}
		c.Close()
		if err != nil {
			tb.Fatalf("cluster setup on %s: %v", node.Addr, err)
		}
	}
	for _, node := range nodes {
		c := redis.NewClient(&redis.Options{Addr: node.Addr})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			select {
			case <-ctx.Done():
				c.Close()
				tb.Fatalf("cluster not healthy on %s: %v %s", node.Addr, err, info)
			case <-time.After(20 * time.Millisecond):
			}
		}
		c.Close()
	}
	return nodes
}

// ClusterURL is a redis:// URL naming every node, for go-redis's
// ParseClusterURL.
func ClusterURL(nodes []*Server) string {
	url := "redis://" + nodes[0].Addr
	for i, node := range nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		url += sep + "addr=" + node.Addr
	}
	return url
}
