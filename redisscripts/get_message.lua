-- Reads the latest version of one message: its JSON, or false when the
-- room has no message of that id (another epoch, trimmed, never posted).
local meta_key = KEYS[1]
local history_key = KEYS[2]
local epoch = ARGV[1]
local seq = ARGV[2]

if redis.call('HGET', meta_key, 'epoch') ~= epoch then
  return false
end
return redis.call('ZRANGEBYSCORE', history_key, seq, seq)[1] or false
