-- Records which users one instance has in a room, sweeps the entries that
-- expired, and reads the room's presence, atomically: of several instances
-- sweeping at once, exactly one sees each user leave. With webhooks of
-- presence on, the changes enter the room's webhook outbox in the same
-- call, and the room is indexed in its bucket by its first entry's expiry,
-- so that any instance sweeps it once the instances holding it are gone.
-- Returns {now_ms, joined_users, left_users, count, {user, since_ms, ...}}.
local entries_key = KEYS[1] -- zset: instance id .. user -> expiry (ms)
local users_key = KEYS[2]   -- zset: present user -> since (ms)
local refs_key = KEYS[3]    -- hash: present user -> number of entries
-- With webhook_room: KEYS[4] the room's webhook outbox, KEYS[5] its
-- bucket's index of due webhook rooms, KEYS[6] its bucket's index of rooms
-- with presence entries.
local instance = ARGV[1]    -- 16 characters
local live_ttl = tonumber(ARGV[2])
local leaving_ttl = tonumber(ARGV[3])
local live_count = tonumber(ARGV[4])
local list_max = tonumber(ARGV[5])
local webhook_room = ARGV[6] -- '': no presence webhooks
local room_json = ARGV[7]    -- the room id as a JSON string
local events = ARGV[8]       -- the types wanted: j(oined), l(eft), o(ccupied), v(acated)
-- ARGV[9 .. 8 + live_count]: users with a stream open on the instance;
-- the rest: users whose last stream on the instance closed.
local first_user = 9

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local joined, left = {}, {}

local hooks = webhook_room ~= ''
local queued = false
local function event(kind, type, user)
  if not hooks or not string.find(events, kind, 1, true) then return end
  local data = '{"room":' .. room_json
  if user then data = data .. ',"user":' .. cjson.encode(user) end
  redis.call('XADD', KEYS[4], '*', 'type', type, 'data', data .. '}')
  queued = true
end
local present = redis.call('ZCARD', users_key)

for i = first_user, first_user - 1 + live_count do
  local user = ARGV[i]
  if redis.call('ZADD', entries_key, now + live_ttl, instance .. user) == 1 then
    if redis.call('HINCRBY', refs_key, user, 1) == 1 then
      redis.call('ZADD', users_key, now, user)
      joined[#joined + 1] = user
      if present == 0 then event('o', 'room.occupied') end
      present = present + 1
      event('j', 'member.joined', user)
    end
  end
end
for i = first_user + live_count, #ARGV do
  -- Still listed for the grace period: a reconnection within it, here or
  -- on another instance, is neither a leave nor a join.
  redis.call('ZADD', entries_key, 'XX', now + leaving_ttl, instance .. ARGV[i])
end

local expired = redis.call('ZRANGEBYSCORE', entries_key, '-inf', now, 'LIMIT', 0, 1000)
for _, entry in ipairs(expired) do
  redis.call('ZREM', entries_key, entry)
  local user = string.sub(entry, 17)
  if redis.call('HINCRBY', refs_key, user, -1) <= 0 then
    redis.call('HDEL', refs_key, user)
    redis.call('ZREM', users_key, user)
    left[#left + 1] = user
    present = present - 1
    event('l', 'member.left', user)
    if present == 0 then event('v', 'room.vacated') end
  end
end

if queued then
  redis.call('ZADD', KEYS[5], 'NX', now, webhook_room)
end
if hooks then
  local first = redis.call('ZRANGE', entries_key, 0, 0, 'WITHSCORES')
  if #first == 2 then
    redis.call('ZADD', KEYS[6], first[2], webhook_room)
  else
    redis.call('ZREM', KEYS[6], webhook_room)
  end
end

if #ARGV >= first_user then
  -- A room whose instances all vanished is forgotten in time.
  local ttl = 2 * math.max(live_ttl, leaving_ttl)
  redis.call('PEXPIRE', entries_key, ttl)
  redis.call('PEXPIRE', users_key, ttl)
  redis.call('PEXPIRE', refs_key, ttl)
end

local listed = {}
if list_max > 0 then
  listed = redis.call('ZRANGE', users_key, 0, list_max - 1, 'WITHSCORES')
end
return {now, joined, left, redis.call('ZCARD', users_key), listed}
