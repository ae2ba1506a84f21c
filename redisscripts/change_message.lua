-- Changing a stored message: shared, not an operation. The Go side
-- prepends read_state.lua, clock.lua and this file to edit_message.lua and
-- delete_message.lua, which each call change_message once: one atomic
-- script call per change that checks, writes and publishes, or refuses
-- and writes nothing.
--
-- A change keeps the message's id, seq and place in history (its new
-- version is written in place, at its seq) and takes a new position of the
-- room, the next value of the seq counter posts take theirs from, so that
-- a room's messages and changes are one ordered run of positions. The
-- change itself is the log entry {"id": "<epoch>-<position>", "event":
-- "edit"|"delete", "message": <the new version>} in the room's log zset,
-- scored by its position; it is what the room's channel carries and what
-- readers after a position get besides the messages (read_history.lua).
--
-- KEYS: meta, history, log, read, live, settings (its ttl overrides the
--       room TTL)[, idempotency key when ARGV[11]][, the room's webhook
--       outbox and its bucket's index of due webhook rooms, last, when
--       ARGV[12]]
-- ARGV: channel, publish command, epoch, seq, the caller's user as JSON,
--       moderator ('1' or ''), If-Match versions (',1,4,' or '' for none),
--       edit window in ms (0: none), room TTL in ms (0: none), idempotency
--       TTL in ms, idempotency fingerprint (''), the room when the change
--       makes a webhook ('': none), then the operation's own.
-- Returns {status, message}: 0 changed, 1 the change stored earlier under
-- the same idempotency key, 2 that key used for something else, 3 no such
-- message, 4 the caller neither wrote it nor moderates, 5 the author's
-- edit window passed, 6 the message is deleted, 7 its version is not one
-- of If-Match's. 6 and 7 return the message as it is; the others nothing.

local function parse_message(msg)
  -- The message is written by post_message.lua and the builders below, in
  -- one member order; metadata, which may hold anything, comes last. Before
  -- it no string literal can hold ',"' (a quote in a literal is escaped),
  -- so the first ',"name":' is the member.
  local meta_at = string.find(msg, ',"metadata":', 1, true)
  local body = meta_at and string.sub(msg, 1, meta_at - 1) or string.sub(msg, 1, -2)
  local user_at = string.find(body, ',"user":', 1, true)
  local text_at = string.find(body, ',"text":', 1, true)
  return {
    head = string.sub(body, 1, text_at - 1), -- id, seq, room and user
    user = string.sub(body, user_at + 8, text_at - 1),
    time = string.match(body, ',"time":"([^"]*)"'),
    -- Messages stored before versions existed are version 1.
    version = tonumber(string.match(body, ',"version":(%d+)')) or 1,
    edited_at = string.match(body, ',"edited_at":"([^"]*)"'),
    deleted = string.find(body, ',"deleted":true', 1, true) ~= nil,
    reply_to = string.match(body, ',"reply_to":"([^"]*)"'),
    metadata = meta_at and string.sub(msg, meta_at + 12, -2) or nil,
  }
end

-- message_json writes a version of a message in the one member order.
local function message_json(m, text_json, version, edited_at, deleted, metadata)
  local out = m.head .. ',"text":' .. text_json .. ',"time":"' .. m.time .. '"' ..
    string.format(',"version":%d', version)
  if edited_at then out = out .. ',"edited_at":"' .. edited_at .. '"' end
  if deleted then out = out .. ',"deleted":true' end
  if m.reply_to then out = out .. ',"reply_to":"' .. m.reply_to .. '"' end
  if metadata then out = out .. ',"metadata":' .. metadata end
  return out .. '}'
end

-- change_message runs one change: build(m, now) returns the new version of
-- the parsed message m.
local function change_message(event, build)
  local meta_key, history_key, log_key, read_key, live_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  local channel = ARGV[1]
  local publish = ARGV[2] -- PUBLISH, or SPUBLISH for sharded Pub/Sub
  local epoch = ARGV[3]
  local seq = tonumber(ARGV[4])
  local user_json = ARGV[5]
  local moderator = ARGV[6] == '1'
  local if_match = ARGV[7]
  local window_ms = tonumber(ARGV[8])
  local room_ttl_ms = tonumber(ARGV[9])
  local idempotency_ttl_ms = ARGV[10]
  local fingerprint = ARGV[11]
  local webhook_room = ARGV[12]
  local idempotency_key = fingerprint ~= '' and KEYS[7] or nil
  local own_ttl = redis.call('HGET', KEYS[6], 'ttl')
  if own_ttl then room_ttl_ms = tonumber(own_ttl) end

  local earlier = idempotent_earlier(idempotency_key, fingerprint)
  if earlier then
    return earlier
  end
  if redis.call('HGET', meta_key, 'epoch') ~= epoch then
    return {3, ''}
  end
  local old = redis.call('ZRANGEBYSCORE', history_key, seq, seq)[1]
  if not old then
    return {3, ''}
  end
  local m = parse_message(old)
  local author = m.user == user_json
  if not author and not moderator then
    return {4, ''}
  end
  if m.deleted then
    return {6, old}
  end
  if if_match ~= '' and not string.find(if_match, string.format(',%d,', m.version), 1, true) then
    return {7, old}
  end
  local now = now_ms()
  if not moderator and window_ms > 0 and now - rfc3339_ms(m.time) > window_ms then
    return {5, ''}
  end

  local message = build(m, rfc3339(now))
  local position = redis.call('HINCRBY', meta_key, 'seq', 1)
  redis.call('ZREMRANGEBYSCORE', history_key, seq, seq)
  redis.call('ZADD', history_key, seq, message)
  local entry = string.format('{"id":"%s-%d","event":"%s","message":%s}', epoch, position, event, message)
  redis.call('ZADD', log_key, position, entry)
  -- The log keeps what history does: changes from its oldest message on.
  local oldest = redis.call('ZRANGE', history_key, 0, 0, 'WITHSCORES')[2]
  redis.call('ZREMRANGEBYSCORE', log_key, '-inf', '(' .. oldest)
  idempotent_store(idempotency_key, fingerprint, message, idempotency_ttl_ms)
  if room_ttl_ms > 0 then
    redis.call('PEXPIRE', meta_key, room_ttl_ms)
    redis.call('PEXPIRE', history_key, room_ttl_ms)
    redis.call('PEXPIRE', log_key, room_ttl_ms)
    read_state_expire(read_key, live_key, room_ttl_ms)
  end
  if webhook_room ~= '' then
    -- The event enters the outbox with the change, or neither is stored.
    local type = event == 'edit' and 'message.edited' or 'message.deleted'
    redis.call('XADD', KEYS[#KEYS - 1], '*', 'type', type, 'data', message)
    redis.call('ZADD', KEYS[#KEYS], 'NX', now, webhook_room)
  end
  redis.call(publish, channel, entry)
  return {0, message}
end
