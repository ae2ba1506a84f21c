package redisscripts

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxBatch bounds the posts sent in one pipeline, so that one batch's
// replies stay small and a burst is split into a few round trips.
const maxBatch = 128

// batcher sends the script calls of concurrent posts to Redis together:
// while one pipeline is in flight, new calls queue, and the next pipeline
// takes every queued call at once. A call arriving when nothing is in
// flight goes out at once, so a lone post pays no wait; batches form only
// when posts already overlap. Each call is sent at most once (onceScripter,
// whatever the client's retry settings); the only resend is the EVAL of a
// call Redis answered NOSCRIPT, which means the script did not run.
//
// No goroutine outlives the queue: the caller that finds the batcher idle
// sends the first batch; if calls queued behind it, one goroutine sends
// them and ends when the queue is empty.
type batcher struct {
	rdb    Client
	script *redis.Script

	mu    sync.Mutex
	queue []*scriptCall
	busy  bool // a goroutine is sending batches
}

// scriptCall is one caller's script call and, once done is closed, its
// reply. The caller reads reply and err only after done is closed. It
// lives for one call, so it carries that call's context, as an
// http.Request does.
type scriptCall struct {
	ctx   context.Context // the caller's; checked before the call is sent
	keys  []string
	args  []any
	reply any
	err   error
	done  chan struct{}
}

func newBatcher(rdb Client, script *redis.Script) *batcher {
	return &batcher{rdb: rdb, script: script}
}

// run queues a script call and waits for its reply or for ctx to end. A
// call that finds the batcher idle sends itself, with whatever queued
// meanwhile, on the caller's goroutine: a lone post costs no hand-off. A
// queued call whose ctx ends returns at once; if it was not sent yet, it
// never is; if it was, it may still run in Redis, exactly as a lost reply.
// Other calls of the same batch are not affected either way. A caller
// sending a batch waits for its replies, which the client's read timeout
// bounds, as a single command's wait always was.
func (b *batcher) run(ctx context.Context, keys []string, args ...any) (any, error) {
	c := &scriptCall{ctx: ctx, keys: keys, args: args, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	if lead {
		if b.sendBatch(nil) {
			// Posts queued behind ours: a new goroutine sends them, so
			// that this caller gets its reply now.
			go b.sendQueued()
		}
		<-c.done
		return c.reply, c.err
	}
	select {
	case <-c.done:
		return c.reply, c.err
	case <-ctx.Done():
		select {
		case <-c.done: // the reply came too; take it
			return c.reply, c.err
		default:
			return nil, ctx.Err()
		}
	}
}

// sendQueued sends batches until the queue is empty.
func (b *batcher) sendQueued() {
	var batch []*scriptCall
	for more := true; more; {
		more = b.sendBatch(&batch)
	}
}

// sendBatch sends up to maxBatch queued calls, reusing *buf if not nil, and
// reports whether more calls queued meanwhile. When it reports false the
// batcher is idle again.
func (b *batcher) sendBatch(buf *[]*scriptCall) (more bool) {
	var batch []*scriptCall
	if buf != nil {
		batch = (*buf)[:0]
	}
	b.mu.Lock()
	n := min(len(b.queue), maxBatch)
	batch = append(batch, b.queue[:n]...)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.mu.Unlock()
	if n > 0 {
		b.send(batch)
		clear(batch)
	}
	if buf != nil {
		*buf = batch
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.busy = false
		return false
	}
	return true
}

// send runs a batch as one pipeline of EVALSHAs, then the calls answered
// NOSCRIPT (the script cache was flushed, or this is a new server) as one
// pipeline of EVALs, and hands each call its reply.
func (b *batcher) send(batch []*scriptCall) {
	// Not a caller's context: one caller giving up must not fail the
	// others. The client's read and write timeouts bound the round trip.
	ctx := context.Background()
	if len(batch) == 1 {
		// Alone: a plain EVALSHA (EVAL on NOSCRIPT) costs less than a
		// pipeline of one.
		c := batch[0]
		if err := c.ctx.Err(); err != nil {
			c.finish(nil, err)
			return
		}
		c.finish(b.script.Run(ctx, onceScripter{b.rdb}, c.keys, c.args...).Result())
		return
	}
	cmds := make([]*redis.Cmd, len(batch))
	for attempt := range 2 {
		pipe := b.rdb.Pipeline()
		for i, c := range batch {
			if attempt == 1 && (cmds[i] == nil || !isNoScript(cmds[i].Err())) {
				continue
			}
			if err := c.ctx.Err(); err != nil {
				cmds[i] = nil
				c.finish(nil, err)
				continue
			}
			if attempt == 0 {
				cmds[i] = b.script.EvalSha(ctx, onceScripter{pipe}, c.keys, c.args...)
			} else {
				cmds[i] = b.script.Eval(ctx, onceScripter{pipe}, c.keys, c.args...)
			}
		}
		if pipe.Len() == 0 {
			break
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
	}
	for i, c := range batch {
		if cmds[i] != nil {
			c.finish(cmds[i].Val(), cmds[i].Err())
		}
	}
}

func (c *scriptCall) finish(reply any, err error) {
	c.reply, c.err = reply, err
	close(c.done)
}
