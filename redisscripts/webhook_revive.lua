-- Puts a dead letter back at the end of its room's webhook outbox, with its
-- webhook id and event time, and makes the room due, atomically.
-- Returns the dead letter as it was, or false when there is no such one.
local dead_key = KEYS[1]
local dead_order_key = KEYS[2]
local outbox_key = KEYS[3]
local due_key = KEYS[4]
local webhook_id = ARGV[1]
local room = ARGV[2]

local letter = redis.call('HGET', dead_key, webhook_id)
if not letter then return false end
local at = string.find(letter, ',"data":', 1, true) -- the first: the other strings escape quotes
local meta = cjson.decode(string.sub(letter, 1, at - 1) .. '}')
if meta.room ~= room then return false end
redis.call('XADD', outbox_key, '*', 'type', meta.type, 'data', string.sub(letter, at + 8, -2),
  'id', webhook_id, 'ts', string.format('%d', meta.timestamp_ms))
local t = redis.call('TIME')
redis.call('ZADD', due_key, 'NX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), room)
redis.call('HDEL', dead_key, webhook_id)
redis.call('ZREM', dead_order_key, webhook_id)
return letter
