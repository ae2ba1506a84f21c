-- Reads one page of a room's history, consistently with the room's state.
-- ARGV: mode ('latest', 'before' or 'after'), cursor epoch, cursor seq, limit.
-- Returns {epoch, last, oldest_seq, has_more, position, entry...}, the
-- entries in ascending order. epoch is '' for a room that does not exist;
-- last is the room's newest position (its seq counter), position the
-- newest one the page reflects. 'latest' and 'before' read messages, each
-- in its latest version, and reflect every position up to last. 'after'
-- reads the room's entries after the cursor's position, messages (latest
-- versions) and changes (log entries, change_message.lua) merged by
-- position, and reflects them up to its last entry while there is more.
-- An 'after' cursor from another epoch, or ahead of the room, reads from
-- the oldest retained message; a 'before' cursor from another epoch reads
-- nothing.
local meta_key = KEYS[1]
local history_key = KEYS[2]
local log_key = KEYS[3]
local mode = ARGV[1]
local cursor_epoch = ARGV[2]
local cursor_seq = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])

local meta = redis.call('HMGET', meta_key, 'epoch', 'seq')
local epoch = meta[1]
if not epoch then
  return {'', 0, 0, 0, 0}
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
    return {epoch, last, oldest, 0, last}
  end
  page = redis.call('ZREVRANGEBYSCORE', history_key, string.format('(%d', cursor_seq), '-inf', 'LIMIT', 0, limit + 1)
else
  if cursor_epoch ~= epoch or cursor_seq > last then
    cursor_seq = 0
  end
  local from = string.format('(%d', cursor_seq)
  local messages = redis.call('ZRANGEBYSCORE', history_key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
  -- Changes before the oldest message are of trimmed messages.
  local changes = redis.call('ZRANGEBYSCORE', log_key, string.format('(%d', math.max(cursor_seq, oldest - 1)), '+inf',
    'WITHSCORES', 'LIMIT', 0, limit + 1)
  local reply = {epoch, last, oldest, 0, last}
  local i, j = 1, 1
  while i <= #messages or j <= #changes do
    if #reply - 5 == limit then
      reply[4] = 1 -- has more: the page reflects up to its last entry
      break
    end
    if j > #changes or (i <= #messages and tonumber(messages[i + 1]) < tonumber(changes[j + 1])) then
      reply[#reply + 1] = messages[i]
      reply[5] = tonumber(messages[i + 1])
      i = i + 2
    else
      reply[#reply + 1] = changes[j]
      reply[5] = tonumber(changes[j + 1])
      j = j + 2
    end
  end
  if reply[4] == 0 then
    reply[5] = last
  end
  return reply
end

local has_more = 0
if #page > limit then
  has_more = 1
  page[#page] = nil
end
local reply = {epoch, last, oldest, has_more, last}
for i = #page, 1, -1 do reply[#reply + 1] = page[i] end
return reply
