-- Counts one event of a client against its rate limit, by the generic cell
-- rate algorithm: the key holds the client's theoretical arrival time (TAT)
-- in microseconds of Redis's clock, and expires when the client is idle.
-- Returns {allowed (1 or 0), remaining, retry_after_us, reset_after_us}.
local key = KEYS[1]
local interval = tonumber(ARGV[1]) -- microseconds between events on average
local burst = tonumber(ARGV[2])    -- events allowed at once

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key) or now)
if tat < now then
  tat = now
end

local next_tat = tat + interval
local allowed_from = next_tat - interval * burst
if allowed_from > now then
  return {0, 0, allowed_from - now, tat - now}
end
redis.call('SET', key, string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {1, math.floor((now - allowed_from) / interval), 0, next_tat - now}
