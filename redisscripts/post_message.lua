-- Stores one message in its room's history and publishes it, atomically.
-- Returns {status, message_json}; status 0 = stored now, 1 = the message
-- stored earlier under the same idempotency key, 2 = that key was used for
-- a different message, 3 = the message replied to is not in the room
-- (message_json is then empty, and nothing is stored), 4 = the room is
-- read-only and the poster no moderator, 5 = slow mode: the user posted
-- too recently (a third element: the ms until they may post again). A
-- room's settings (KEYS[6], settings.go) override history_max and
-- room_ttl_ms. A new message's reply
-- has a third element: 1 when the poster had no read marker in the room
-- before (read_state.lua, prepended to this script, has the read state;
-- clock.lua, prepended too, the times).
local meta_key = KEYS[1]
local history_key = KEYS[2]
local read_key = KEYS[3]
local live_key = KEYS[4]
local log_key = KEYS[5] -- the room's changes (change_message.lua), trimmed and expiring with history
local settings_key = KEYS[6] -- hash: the room's own settings
local slow_key = KEYS[7]     -- string: the poster's last post, expiring when slow mode allows the next
local index_key = KEYS[8]    -- zset: the bucket's rooms by last post (ms), the room directory
local idempotency_key = ARGV[6] ~= '' and KEYS[9] or nil -- a fingerprint comes with a key
local channel = ARGV[1]
local room_json = ARGV[2]
local fields_json = ARGV[3]
local history_max = tonumber(ARGV[4])
local idempotency_ttl_ms = ARGV[5]
local fingerprint = ARGV[6]
local room_ttl_ms = tonumber(ARGV[7]) -- 0: the room never expires
local publish = ARGV[8] -- PUBLISH, or SPUBLISH for sharded Pub/Sub
local user = ARGV[9]
local webhook_room = ARGV[10] -- '': no message.created webhook; else the last two KEYS are
                              -- the room's webhook outbox and its bucket's index of due rooms
local reply_epoch = ARGV[11]  -- '': the message replies to none
local reply_seq = ARGV[12]
local tail_json = ARGV[13]    -- the members after version (reply_to, metadata), each with its comma
local moderator = ARGV[14] == '1' -- exempt from read-only and slow mode
local room = ARGV[15]

local earlier = idempotent_earlier(idempotency_key, fingerprint)
if earlier then
  return earlier
end

local settings = redis.call('HMGET', settings_key, 'history_max', 'ttl', 'read_only', 'slow_mode')
if settings[1] then history_max = tonumber(settings[1]) end
if settings[2] then room_ttl_ms = tonumber(settings[2]) end
local slow_ms = 0
if not moderator then
  if settings[3] == '1' then
    return {4, ''}
  end
  if settings[4] then slow_ms = tonumber(settings[4]) end
end

local function base36(n)
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  local out = ''
  repeat
    local d = n % 36
    out = string.sub(digits, d + 1, d + 1) .. out
    n = (n - d) / 36
  until n == 0
  return out
end

local now = redis.call('TIME')
local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local ms = math.floor(us / 1000)

local epoch = redis.call('HGET', meta_key, 'epoch')
if reply_epoch ~= '' and (reply_epoch ~= epoch or
    redis.call('ZCOUNT', history_key, reply_seq, reply_seq) == 0) then
  return {3, ''}
end
if slow_ms > 0 and not redis.call('SET', slow_key, '1', 'PX', slow_ms, 'NX') then
  return {5, '', math.max(redis.call('PTTL', slow_key), 1)}
end
if not epoch then
  -- The room is new, or Redis lost its state: start a new epoch, and drop
  -- any history left from the old one so that sequence numbers never clash.
  -- Microseconds: a room lost and recreated gets a different epoch even
  -- within the same millisecond.
  epoch = base36(us)
  redis.call('DEL', history_key, log_key)
  read_state_reset(read_key, live_key)
  redis.call('HSET', meta_key, 'epoch', epoch)
end
local seq = redis.call('HINCRBY', meta_key, 'seq', 1)

local message = string.format('{"id":"%s-%d","seq":%d,"room":%s,%s,"time":"%s","version":1%s}',
  epoch, seq, seq, room_json, fields_json, rfc3339(ms), tail_json)

redis.call('ZADD', history_key, seq, message)
local oldest = nil -- the oldest retained seq, when history was trimmed
if redis.call('ZREMRANGEBYRANK', history_key, 0, -(history_max + 1)) > 0 then
  -- Edits and deletes take positions too, so the oldest retained message
  -- is not seq - history_max: what else is trimmed follows history.
  oldest = tonumber(redis.call('ZRANGE', history_key, 0, 0, 'WITHSCORES')[2])
  redis.call('ZREMRANGEBYSCORE', log_key, '-inf', '(' .. oldest)
end
local first_marker = read_state_posted(read_key, live_key, user, seq, oldest)
idempotent_store(idempotency_key, fingerprint, message, idempotency_ttl_ms)
if room_ttl_ms > 0 then
  -- An idle room expires whole; when it is posted to again it starts a new
  -- epoch, and clients resuming from before are told with a reset.
  redis.call('PEXPIRE', meta_key, room_ttl_ms)
  redis.call('PEXPIRE', history_key, room_ttl_ms)
  redis.call('PEXPIRE', log_key, room_ttl_ms)
  read_state_expire(read_key, live_key, room_ttl_ms)
end
if webhook_room ~= '' then
  -- The event enters the outbox with the message, or neither is stored.
  redis.call('XADD', KEYS[#KEYS - 1], '*', 'type', 'message.created', 'data', message)
  redis.call('ZADD', KEYS[#KEYS], 'NX', ms, webhook_room)
end
redis.call('ZADD', index_key, ms, room)
redis.call(publish, channel, message)
return {0, message, first_marker}
