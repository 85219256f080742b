-- Helpers shared by admit.lua, record.lua and refund.lua; RedisRateLimiter puts this file in front of each of them.
-- Per scope, three keys: a ZSET of request ids scored by time, a ZSET of "<id>:<tokens>" scored by time, and the
-- running token sum of that ZSET. All three share the team's hash tag, so one script may touch them on Redis Cluster.
local function fmt(x) return string.format('%.17g', x) end
local function clock(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  return tonumber(arg)
end
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end
-- drop token entries that left the window; return the sum of those still in it
local function token_sum(tk, sk, cutoff, ttl)
  local expired = redis.call('ZRANGEBYSCORE', tk, '-inf', cutoff)
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', tk, '-inf', cutoff) end
  local sum = redis.call('GET', sk)
  if sum == false then
    -- no running sum (first use, or it was lost): rebuild it from the log
    local total = 0
    local members = redis.call('ZRANGE', tk, 0, -1)
    for i = 1, #members do total = total + tokens_of(members[i]) end
    if total > 0 then redis.call('SET', sk, total, 'PX', ttl) end
    return total
  end
  local gone = 0
  for i = 1, #expired do gone = gone + tokens_of(expired[i]) end
  if gone > 0 then return redis.call('DECRBY', sk, gone) end
  return tonumber(sum)
end
local function newest(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 0 then return '' end
  return last[2]
end
