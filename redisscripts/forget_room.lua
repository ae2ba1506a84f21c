-- Drops an expired room from its bucket's room index (directory.go),
-- unless the room lives again: the post script makes its meta and indexes
-- it in one call, so a room with meta stays indexed.
local index_key = KEYS[1]
local meta_key = KEYS[2]
local room = ARGV[1]

if redis.call('EXISTS', meta_key) == 0 then
  redis.call('ZREM', index_key, room)
end
return 0
