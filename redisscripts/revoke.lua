-- Records a token revocation until it expires (a later expiry of the same
-- revocation wins), forgets expired ones and announces it on the control
-- channel. Returns 1.
local revoked_key = KEYS[1]
local member = ARGV[1]
local expires_ms = ARGV[2]
local now_ms = ARGV[3]
local channel = ARGV[4]
local message = ARGV[5]

redis.call('ZREMRANGEBYSCORE', revoked_key, '-inf', now_ms)
redis.call('ZADD', revoked_key, 'GT', expires_ms, member)
redis.call('PUBLISH', channel, message)
return 1
