-- Reads one page of a room's history, consistently with the room's state.
-- ARGV: mode ('latest', 'before' or 'after'), cursor epoch, cursor seq, limit.
-- Returns {epoch, last_seq, oldest_seq, has_more, message...}, the messages
-- in ascending order. epoch is '' for a room that does not exist. An 'after'
-- cursor from another epoch, or ahead of the room, reads from the oldest
-- retained message; a 'before' cursor from another epoch reads nothing.
local meta_key = KEYS[1]
local history_key = KEYS[2]
local mode = ARGV[1]
local cursor_epoch = ARGV[2]
local cursor_seq = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])

local meta = redis.call('HMGET', meta_key, 'epoch', 'seq')
local epoch = meta[1]
if not epoch then
  return {'', 0, 0, 0}
end
local last = tonumber(meta[2])
local oldest = last + 1
local first = redis.call('ZRANGE', history_key, 0, 0, 'WITHSCORES')
if #first == 2 then
  oldest = tonumber(first[2])
end

local page
if mode == 'latest' then
  page = redis.call('ZREVRANGEBYSCORE', history_key, '+inf', '-inf', 'LIMIT', 0, limit + 1)
elseif mode == 'before' then
  if cursor_epoch ~= epoch then
    return {epoch, last, oldest, 0}
  end
  page = redis.call('ZREVRANGEBYSCORE', history_key, string.format('(%d', cursor_seq), '-inf', 'LIMIT', 0, limit + 1)
else
  if cursor_epoch ~= epoch or cursor_seq > last then
    cursor_seq = 0
  end
  page = redis.call('ZRANGEBYSCORE', history_key, string.format('(%d', cursor_seq), '+inf', 'LIMIT', 0, limit + 1)
end

local has_more = 0
if #page > limit then
  has_more = 1
  page[#page] = nil
end
local reply = {epoch, last, oldest, has_more}
if mode == 'after' then
  for i = 1, #page do reply[#reply + 1] = page[i] end
else
  for i = #page, 1, -1 do reply[#reply + 1] = page[i] end
end
return reply
