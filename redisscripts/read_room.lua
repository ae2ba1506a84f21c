-- Reads a user's read state in one room: {epoch, marker, unread, last}.
-- epoch is false for a room without messages (the rest is then 0/false),
-- marker the seq of the user's marker or false for none, unread the live
-- messages after it, last the JSON of the room's newest message. Every
-- command is O(log n): the cost does not grow with the history's length.
-- read_state.lua is prepended.
local meta_key = KEYS[1]
local read_key = KEYS[2]
local live_key = KEYS[3]
local history_key = KEYS[4]
local user = ARGV[1]

local epoch = redis.call('HGET', meta_key, 'epoch')
if not epoch then
  return {false, false, 0, false}
end
local marker = redis.call('HGET', read_key, user)
local last = redis.call('ZRANGE', history_key, -1, -1)[1] or false
return {epoch, marker, read_state_unread(live_key, marker), last}
