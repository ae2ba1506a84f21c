package redisscripts

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// processor runs a command: a client or a pipeline.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// onceScripter runs script calls that go-redis must never send again on
// its own, whatever the client's retry settings: a Cluster client resends
// every call of a node's pipeline after a connection error or a retryable
// first reply (LOADING, TRYAGAIN, …), up to MaxRedirects times, and
// resends a single call after a connection error too, where
// MaxRetries = -1 does not reach; a post script that had run would then
// store its message twice. MOVED and ASK answers, which mean the script did
// not run, are still followed to the right node. Use it as the Scripter of
// a redis.Script: script.EvalSha(ctx, onceScripter{pipe}, …).
type onceScripter struct{ p processor }

// onceCmd is a command that go-redis does not resend (redis.Cmder's
// NoRetry).
type onceCmd struct{ *redis.Cmd }

func (onceCmd) NoRetry() bool { return true }

var _ redis.Scripter = onceScripter{}

func (s onceScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.call(ctx, "eval", script, keys, args)
}

func (s onceScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.call(ctx, "evalsha", sha1, keys, args)
}

func (s onceScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.call(ctx, "eval_ro", script, keys, args)
}

func (s onceScripter) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.call(ctx, "evalsha_ro", sha1, keys, args)
}

func (s onceScripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	args := []any{"script", "exists"}
	for _, h := range hashes {
		args = append(args, h)
	}
	cmd := redis.NewBoolSliceCmd(ctx, args...)
	_ = s.p.Process(ctx, cmd)
	return cmd
}

func (s onceScripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	cmd := redis.NewStringCmd(ctx, "script", "load", script)
	_ = s.p.Process(ctx, cmd)
	return cmd
}

func (s onceScripter) call(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	all := make([]any, 0, 3+len(keys)+len(args))
	all = append(all, name, payload, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	all = append(all, args...)
	cmd := redis.NewCmd(ctx, all...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3) // the slot of a Cluster call is its first key's
	}
	_ = s.p.Process(ctx, onceCmd{cmd})
	return cmd
}

// isNoScript reports whether a script call was answered NOSCRIPT: the
// server does not know the script, so it did not run.
func isNoScript(err error) bool {
	return errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")
}
