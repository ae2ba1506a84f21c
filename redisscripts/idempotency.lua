-- Idempotency helpers: shared, not an operation. The Go side prepends this
-- file to the scripts that store under an Idempotency-Key (post_message and
-- the change scripts): the key holds "<fingerprint>\n<stored JSON>".

-- idempotent_earlier is the reply to a call under key that an earlier one
-- answered: {1, stored JSON} for the same fingerprint, {2, ''} for another;
-- nil when there is no key or it was not used.
local function idempotent_earlier(key, fingerprint)
  if not key then return nil end
  local earlier = redis.call('GET', key)
  if not earlier then return nil end
  local sep = string.find(earlier, '\n', 1, true)
  if string.sub(earlier, 1, sep - 1) ~= fingerprint then
    return {2, ''}
  end
  return {1, string.sub(earlier, sep + 1)}
end

-- idempotent_store remembers message under key for ttl_ms, if there is a
-- key.
local function idempotent_store(key, fingerprint, message, ttl_ms)
  if key then
    redis.call('SET', key, fingerprint .. '\n' .. message, 'PX', ttl_ms)
  end
end
