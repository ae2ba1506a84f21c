-- Lifts a user's ban in a room and forgets the room's ended bans; a
-- lifted ban is announced on the control channel. Returns 1 when a ban
-- in force was lifted, 0 when there was none (or it had ended).
local bans_key = KEYS[1]
local ends_key = KEYS[2]
local index_key = KEYS[3]
local room = ARGV[1]
local user = ARGV[2]
local now_ms = ARGV[3]
local channel = ARGV[4]
local message = ARGV[5]

local ended = redis.call('ZRANGEBYSCORE', ends_key, '-inf', now_ms)
for _, u in ipairs(ended) do
  redis.call('HDEL', bans_key, u)
end
if #ended > 0 then
  redis.call('ZREMRANGEBYSCORE', ends_key, '-inf', now_ms)
end
local lifted = redis.call('HDEL', bans_key, user)
redis.call('ZREM', ends_key, user)
if redis.call('HLEN', bans_key) == 0 then
  redis.call('SREM', index_key, room)
end
if lifted == 1 then
  redis.call('PUBLISH', channel, message)
end
return lifted
