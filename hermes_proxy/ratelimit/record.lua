-- Add an admitted request's completion tokens to the token log of each scope.
-- Runs after common.lua (clock, fmt, token_sum).
-- KEYS: 2 per scope (tokens, token sum); ARGV: now ('' = Redis TIME), window seconds, entry id, tokens
local now = clock(ARGV[1])
local window = tonumber(ARGV[2])
local id = ARGV[3]
local tokens = tonumber(ARGV[4])
local cutoff = fmt(now - window)
local ttl = math.ceil(window * 1000) + 1000
for i = 1, #KEYS / 2 do
  local tk, sk = KEYS[2 * i - 1], KEYS[2 * i]
  token_sum(tk, sk, cutoff, ttl)
  redis.call('ZADD', tk, fmt(now), id .. ':' .. tokens)
  redis.call('INCRBY', sk, tokens)
  redis.call('PEXPIRE', tk, ttl)
  redis.call('PEXPIRE', sk, ttl)
end
return 1
