package redisscripts

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// The fields of a room's settings hash (Keys.settings). The post and
// change scripts read history_max, ttl (ms), read_only ('1') and
// slow_mode (ms); a field that is absent is the server's default.
const (
	settingTitle      = "title"
	settingTopic      = "topic"
	settingHistoryMax = "history_max"
	settingTTL        = "ttl"
	settingReadOnly   = "read_only"
	settingSlowMode   = "slow_mode"
)

// Settings returns room's own settings; the zero Settings when it has
// none.
func (s *Store) Settings(ctx context.Context, room string) (chat.Settings, error) {
	values, err := s.rdb.HGetAll(ctx, s.keys.settings(room)).Result()
	if err != nil {
		return chat.Settings{}, wrapRedisError("read settings", err)
	}
	return settingsOf(values), nil
}

// SetSettings replaces room's settings by set, in one step: the next post
// on any instance follows them. Zero fields are not stored, so they
// follow the server's defaults.
func (s *Store) SetSettings(ctx context.Context, room string, set chat.Settings) error {
	key := s.keys.settings(room)
	fields := settingsFields(set)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(fields) > 0 {
			p.HSet(ctx, key, fields...)
		}
		return nil
	})
	if err != nil {
		return wrapRedisError("write settings", err)
	}
	return nil
}

// settingsFields are the hash fields and values of set, the zero ones
// left out.
func settingsFields(set chat.Settings) []any {
	var fields []any
	if set.Title != "" {
		fields = append(fields, settingTitle, set.Title)
	}
	if set.Topic != "" {
		fields = append(fields, settingTopic, set.Topic)
	}
	if set.HistoryMax > 0 {
		fields = append(fields, settingHistoryMax, set.HistoryMax)
	}
	if set.TTL > 0 {
		fields = append(fields, settingTTL, set.TTL.Milliseconds())
	}
	if set.ReadOnly {
		fields = append(fields, settingReadOnly, "1")
	}
	if set.SlowMode > 0 {
		fields = append(fields, settingSlowMode, set.SlowMode.Milliseconds())
	}
	return fields
}

// settingsOf reads a settings hash; fields it does not know or cannot
// parse are the defaults.
func settingsOf(values map[string]string) chat.Settings {
	ms := func(field string) time.Duration {
		n, _ := strconv.ParseInt(values[field], 10, 64)
		return time.Duration(max(n, 0)) * time.Millisecond
	}
	historyMax, _ := strconv.Atoi(values[settingHistoryMax])
	return chat.Settings{
		Title: values[settingTitle], Topic: values[settingTopic], HistoryMax: max(historyMax, 0),
		TTL: ms(settingTTL), ReadOnly: values[settingReadOnly] == "1", SlowMode: ms(settingSlowMode),
	}
}
