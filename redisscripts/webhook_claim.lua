-- Takes or renews the lease on a room's webhook outbox, removes the events
-- its holder delivered, and returns the oldest events, atomically: of
-- several instances claiming a due room, exactly one gets it.
-- Returns {held, attempts, entries}: held 0 when another instance holds the
-- room, it is backing off, or nothing is pending; attempts the failures of
-- the first entry so far; entries as XRANGE gives them.
local due_key = KEYS[1]    -- zset: room -> when its next delivery is due (ms)
local outbox_key = KEYS[2] -- stream: the room's undelivered events
local lease_key = KEYS[3]  -- string: the holder's token, expiring with the lease
local tries_key = KEYS[4]  -- hash: head -> entry id, attempts, error
local room = ARGV[1]
local token = ARGV[2]
local lease_ms = tonumber(ARGV[3])
local count = tonumber(ARGV[4]) -- 0: renew only
-- ARGV[5 ..]: entries the caller delivered (a 2xx): they are done.

if #ARGV > 4 then
  -- Delivered is delivered, lease or not: at worst another holder sends it again.
  redis.call('XDEL', outbox_key, unpack(ARGV, 5))
  local head = redis.call('HGET', tries_key, 'head')
  for i = 5, #ARGV do
    if ARGV[i] == head then redis.call('DEL', tries_key) end
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('GET', lease_key) ~= token then
  -- The lease's end is the room's due time, so a due room has no holder.
  local due = redis.call('ZSCORE', due_key, room)
  if not due or tonumber(due) > now then return {0, 0, {}} end
end
if redis.call('XLEN', outbox_key) == 0 then
  -- Atomic with the post script's ZADD NX: an event added later makes
  -- the room due again.
  redis.call('ZREM', due_key, room)
  redis.call('DEL', lease_key, tries_key)
  return {0, 0, {}}
end
redis.call('SET', lease_key, token, 'PX', lease_ms)
redis.call('ZADD', due_key, now + lease_ms, room)
if count == 0 then return {1, 0, {}} end
local entries = redis.call('XRANGE', outbox_key, '-', '+', 'COUNT', count)
local attempts = 0
if redis.call('HGET', tries_key, 'head') == entries[1][1] then
  attempts = tonumber(redis.call('HGET', tries_key, 'attempts')) or 0
end
return {1, attempts, entries}
