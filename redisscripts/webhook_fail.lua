-- Records a failed delivery of a room's oldest webhook event and releases
-- the room until its next attempt, or, once the event is older than the
-- maximum age, moves it to the bucket's dead letters and makes the room's
-- next event due, atomically.
-- Returns {outcome, attempts, delay_ms}: outcome 0 when the caller no
-- longer held the lease (nothing recorded), 1 retry after delay_ms, 2 dead.
local due_key = KEYS[1]
local outbox_key = KEYS[2]
local lease_key = KEYS[3]
local tries_key = KEYS[4]
local dead_key = KEYS[5]       -- hash: webhook id -> dead letter JSON
local dead_order_key = KEYS[6] -- zset: webhook id -> when it died (ms)
local room = ARGV[1]
local token = ARGV[2]
local entry = ARGV[3]          -- the event that failed, the outbox's first
local webhook_id = ARGV[4]
local err = ARGV[5]
local base_ms = tonumber(ARGV[6])  -- delay after the first failure
local max_delay_ms = tonumber(ARGV[7])
local jitter = tonumber(ARGV[8])   -- 0 to 1, the caller's random draw
local max_age_ms = tonumber(ARGV[9])
local dead_max = tonumber(ARGV[10]) -- dead letters kept per bucket
local status = tonumber(ARGV[11])   -- the receiver's HTTP status; 0: none
-- ARGV[12 ..]: entries the caller delivered before this one.

if #ARGV > 11 then
  redis.call('XDEL', outbox_key, unpack(ARGV, 12))
end
if redis.call('GET', lease_key) ~= token then return {0, 0, 0} end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local attempts = 1
if redis.call('HGET', tries_key, 'head') == entry then
  attempts = redis.call('HINCRBY', tries_key, 'attempts', 1)
else
  redis.call('HSET', tries_key, 'head', entry, 'attempts', 1)
end
redis.call('HSET', tries_key, 'error', err)

local found = redis.call('XRANGE', outbox_key, entry, entry)
-- The age counts from the entry: a dead letter sent again gets a new
-- schedule; its "ts" (the event's time) stays.
local enqueued = tonumber(string.match(entry, '^(%d+)'))
local fields = {}
if #found == 1 then
  local kv = found[1][2]
  for i = 1, #kv, 2 do fields[kv[i]] = kv[i + 1] end
end

if #found == 0 or now - enqueued >= max_age_ms then
  if #found == 1 then
    -- "data" last and raw: what the receiver would have got, byte for byte.
    local letter = '{"id":' .. cjson.encode(webhook_id) .. ',"room":' .. cjson.encode(room) ..
      ',"type":' .. cjson.encode(fields.type) .. ',"timestamp_ms":' .. (fields.ts or enqueued) ..
      ',"attempts":' .. attempts .. ',"last_error":' .. cjson.encode(err) .. ',"last_status":' .. status ..
      ',"dead_at_ms":' .. now .. ',"data":' .. fields.data .. '}'
    redis.call('HSET', dead_key, webhook_id, letter)
    redis.call('ZADD', dead_order_key, now, webhook_id)
    local over = redis.call('ZCARD', dead_order_key) - dead_max
    if over > 0 then
      local popped = redis.call('ZPOPMIN', dead_order_key, over)
      for i = 1, #popped, 2 do redis.call('HDEL', dead_key, popped[i]) end
    end
  end
  redis.call('XDEL', outbox_key, entry)
  redis.call('DEL', tries_key, lease_key)
  if redis.call('XLEN', outbox_key) == 0 then
    redis.call('ZREM', due_key, room)
  else
    redis.call('ZADD', due_key, now, room)
  end
  return {2, attempts, 0}
end

local delay = math.min(base_ms * 2 ^ (attempts - 1), max_delay_ms)
delay = math.floor(delay / 2 + jitter * delay / 2)
redis.call('DEL', lease_key)
redis.call('ZADD', due_key, now + delay, room)
return {1, attempts, delay}
