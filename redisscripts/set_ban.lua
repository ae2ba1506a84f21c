-- Sets (or replaces) a user's ban in a room, forgets the room's ended
-- bans, indexes the room in its bucket and announces the ban on the
-- control channel. Returns 1 for a new ban, 0 for a replaced one.
local bans_key = KEYS[1]
local ends_key = KEYS[2]
local index_key = KEYS[3]
local room = ARGV[1]
local user = ARGV[2]
local record = ARGV[3]
local ends_ms = ARGV[4] -- '+inf' for a ban without end
local now_ms = ARGV[5]
local channel = ARGV[6]
local message = ARGV[7]

local ended = redis.call('ZRANGEBYSCORE', ends_key, '-inf', now_ms)
for _, u in ipairs(ended) do
  redis.call('HDEL', bans_key, u)
end
if #ended > 0 then
  redis.call('ZREMRANGEBYSCORE', ends_key, '-inf', now_ms)
end
local created = redis.call('HSET', bans_key, user, record)
redis.call('ZADD', ends_key, ends_ms, user)
redis.call('SADD', index_key, room)
redis.call('PUBLISH', channel, message)
return created
