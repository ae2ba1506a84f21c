-- Admits at most one typing event per user and room per window.
-- Returns Redis's time in ms when the event may be published, else 0.
local mark_key = KEYS[1]
local window_ms = ARGV[1]

if not redis.call('SET', mark_key, '1', 'NX', 'PX', window_ms) then
  return 0
end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
