-- Read state: shared helpers, not an operation. The Go side prepends this
-- file to every script that changes what counts as unread (post_message,
-- mark_read, and the delete script), so that each of them stays one
-- atomic script call and the rules live in one place.
--
-- A room's read state is two keys in the room's slot:
--   read_key: hash, user -> seq of the newest message the user has read
--   live_key: zset, seq -> seq of every retained message that is not a
--             tombstone, trimmed with the history
-- A user's unread count is ZCOUNT live_key (marker, +inf]: O(log n),
-- whatever the history's length. The user's own messages never count, as
-- posting moves the poster's marker to the message (markers never go back).

-- read_state_posted records that user posted the message seq: it is live,
-- and the poster has read up to it; oldest is the oldest seq history
-- retains when the post trimmed it (nil when it did not). It returns 1
-- when the user had no marker in the room before (the caller then adds the
-- room to the user's index of rooms).
local function read_state_posted(read_key, live_key, user, seq, oldest)
  redis.call('ZADD', live_key, seq, seq)
  if oldest then
    redis.call('ZREMRANGEBYSCORE', live_key, '-inf', '(' .. oldest)
  end
  return redis.call('HSET', read_key, user, seq)
end

-- read_state_deleted takes the message seq out of the unread counts: the
-- one thing the delete script has to do for read state.
local function read_state_deleted(live_key, seq)
  redis.call('ZREM', live_key, seq)
end

-- read_state_reset forgets the read state of a room whose epoch starts
-- again: old markers name sequence numbers of the old epoch.
local function read_state_reset(read_key, live_key)
  redis.call('DEL', read_key, live_key)
end

-- read_state_expire makes the read state expire with the room.
local function read_state_expire(read_key, live_key, ttl_ms)
  redis.call('PEXPIRE', read_key, ttl_ms)
  redis.call('PEXPIRE', live_key, ttl_ms)
end

-- read_state_unread counts the live messages after marker (a seq, or nil
-- for a user without a marker: every retained live message).
local function read_state_unread(live_key, marker)
  if not marker then
    return redis.call('ZCARD', live_key)
  end
  return redis.call('ZCOUNT', live_key, '(' .. marker, '+inf')
end
