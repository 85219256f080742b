-- Check every scope of one request and, only when none refuses, count it in all of them (atomic: one script).
-- Runs after common.lua (clock, fmt, tokens_of, token_sum, newest).
-- KEYS: 3 per scope (requests, tokens, token sum)
-- ARGV: now ('' = Redis TIME), window seconds, request id, prompt tokens, then per scope: rpm, tpm (-1 = no limit)
-- returns: allowed (1/0), now, then per scope: requests, newest request time, tokens, newest token time,
--          seconds until admissible for requests ('' = not refused), same for tokens
local now = clock(ARGV[1])
local window = tonumber(ARGV[2])
local id = ARGV[3]
local prompt = tonumber(ARGV[4])
local cutoff = fmt(now - window)
local ttl = math.ceil(window * 1000) + 1000
local n = #KEYS / 3
local states = {}
local refused = false
for i = 1, n do
  local rk, tk, sk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local rpm, tpm = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  local s = {requests = 0, tokens = 0, rwait = '', twait = ''}
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', rk, '-inf', cutoff)
    s.requests = redis.call('ZCARD', rk)
    if s.requests + 1 > rpm then
      refused = true
      local index = s.requests - rpm
      if index >= 0 and index < s.requests then
        local entry = redis.call('ZRANGE', rk, index, index, 'WITHSCORES')
        s.rwait = fmt(tonumber(entry[2]) + window - now)
      else
        s.rwait = fmt(window)
      end
    end
  end
  if tpm >= 0 then
    s.tokens = token_sum(tk, sk, cutoff, ttl)
    if s.tokens >= tpm then
      refused = true
      local need = s.tokens - tpm + 1
      local gone = 0
      s.twait = fmt(window)
      local entries = redis.call('ZRANGE', tk, 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        gone = gone + tokens_of(entries[j])
        if gone >= need then
          s.twait = fmt(tonumber(entries[j + 1]) + window - now)
          break
        end
      end
    end
  end
  states[i] = s
end
if not refused then
  local score = fmt(now)
  for i = 1, n do
    local rk, tk, sk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
    local rpm, tpm = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
    if rpm >= 0 then
      redis.call('ZADD', rk, score, id)
      redis.call('PEXPIRE', rk, ttl)
      states[i].requests = states[i].requests + 1
    end
    if tpm >= 0 and prompt > 0 then
      redis.call('ZADD', tk, score, id .. ':' .. prompt)
      redis.call('INCRBY', sk, prompt)
      redis.call('PEXPIRE', tk, ttl)
      redis.call('PEXPIRE', sk, ttl)
      states[i].tokens = states[i].tokens + prompt
    end
  end
end
local out = {refused and 0 or 1, fmt(now)}
for i = 1, n do
  local s = states[i]
  local rk, tk = KEYS[3 * i - 2], KEYS[3 * i - 1]
  table.insert(out, fmt(s.requests))
  table.insert(out, newest(rk))
  table.insert(out, fmt(s.tokens))
  table.insert(out, newest(tk))
  table.insert(out, s.rwait)
  table.insert(out, s.twait)
end
return out
