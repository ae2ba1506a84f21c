package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartCluster starts a Redis Cluster of n primaries (no replicas), with
// the 16384 hash slots split evenly, and waits until every node reports the
// cluster healthy. It fails or skips like Start, and skips under -short
// (see SkipIfShort).
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	return StartClusterWithReplicas(tb, n, 0)[:n]
}

// StartClusterWithReplicas starts a Redis Cluster of n primaries and
// replicas replicas per primary: nodes[0:n] are the primaries, and
// nodes[n+i*replicas+j] is the j-th replica of nodes[i]. It waits until the
// cluster is healthy and every replica is in sync. Under -short it skips
// (see SkipIfShort).
func StartClusterWithReplicas(tb testing.TB, n, replicas int) []*Server {
	tb.Helper()
	SkipIfShort(tb, "a Redis Cluster")
	nodes := make([]*Server, n*(1+replicas))
	for i := range nodes {
		nodes[i] = Start(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--repl-diskless-sync-delay", "0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const slots = 16384
	for i, node := range nodes {
		c := redis.NewClient(&redis.Options{Addr: node.Addr})
		var err error
		if i < n {
			first, last := i*slots/n, (i+1)*slots/n-1
			err = c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err()
		}
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
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(nodes))+"\r") {
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
	for i, replica := range nodes[n:] {
		primary := nodes[i/replicas]
		if err := replicate(ctx, replica, primary); err != nil {
			tb.Fatalf("cluster replica %s of %s: %v", replica.Addr, primary.Addr, err)
		}
	}
	return nodes
}

// replicate makes replica a replica of primary and waits until it is in sync
// and every node of the cluster knows it.
func replicate(ctx context.Context, replica, primary *Server) error {
	p := redis.NewClient(&redis.Options{Addr: primary.Addr})
	defer p.Close()
	r := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer r.Close()
	id, err := p.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return err
	}
	replicating := false
	for {
		// The replica may not know the primary's id yet (gossip).
		if !replicating {
			err = r.Do(ctx, "CLUSTER", "REPLICATE", id).Err()
			replicating = err == nil
		}
		if replicating {
			info, _ := r.Info(ctx, "replication").Result()
			if strings.Contains(info, "master_link_status:up") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ID is the node's cluster node id.
func (s *Server) ID(ctx context.Context) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	return c.Do(ctx, "CLUSTER", "MYID").Text()
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
