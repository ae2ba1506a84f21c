-- Moves a user's read marker in a room forward to a message, never back,
-- and when it moved, publishes the read event on the room's channel.
-- read_state.lua is prepended. Returns {status, marker, unread, moved}:
-- status 0 = done (marker is the seq the marker is at now, unread the live
-- messages after it, moved 1 when this call moved it), 1 = the room has no
-- messages, 2 = the id names no message of the room (another epoch, or
-- after the room's last message). Nothing is written unless status is 0.
local meta_key = KEYS[1]
local read_key = KEYS[2]
local live_key = KEYS[3]
local presence_users_key = KEYS[4] -- zset of the room's present users (presence_sync.lua)
local user = ARGV[1]
local epoch = ARGV[2]
local seq = tonumber(ARGV[3])
local receipts_max = tonumber(ARGV[4]) -- read receipts only up to this many present users; 0: none
local channel = ARGV[5]
local publish = ARGV[6] -- PUBLISH, or SPUBLISH for sharded Pub/Sub
local room_json = ARGV[7]
local user_json = ARGV[8]

local meta = redis.call('HMGET', meta_key, 'epoch', 'seq')
if not meta[1] then
  return {1, 0, 0, 0}
end
if meta[1] ~= epoch or seq > tonumber(meta[2]) then
  return {2, 0, 0, 0}
end

local marker = tonumber(redis.call('HGET', read_key, user))
local moved = 0
if not marker or marker < seq then
  marker = seq
  moved = 1
  redis.call('HSET', read_key, user, seq)
  -- The markers live as long as the room (ROOM_TTL), not longer.
  local ttl = redis.call('PTTL', meta_key)
  if ttl > 0 then
    redis.call('PEXPIRE', read_key, ttl)
  end
  local receipts = receipts_max > 0 and redis.call('ZCARD', presence_users_key) <= receipts_max
  redis.call(publish, channel, string.format('!read\n{"room":%s,"id":"%s-%d","user":%s,"receipts":%s}',
    room_json, epoch, seq, user_json, tostring(receipts)))
end
return {0, marker, read_state_unread(live_key, marker), moved}
