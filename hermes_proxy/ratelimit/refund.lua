-- Take one admitted request back (its request entry and its prompt-token entry) in every scope, atomically.
-- Runs after common.lua (tokens_of). An entry that is not there (never counted, already refunded, or gone from the
-- window) is skipped, so refunding an unknown or expired ticket changes nothing.
-- KEYS: 3 per scope (requests, tokens, token sum); ARGV: the admit's request id, its prompt tokens
-- returns: how many entries were removed
local id = ARGV[1]
local member = id .. ':' .. ARGV[2]
local removed = 0
for i = 1, #KEYS / 3 do
  local rk, tk, sk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  removed = removed + redis.call('ZREM', rk, id)
  if redis.call('ZREM', tk, member) == 1 then
    removed = removed + 1
    -- a lost running sum is rebuilt from the log (token_sum), which no longer holds the entry: only adjust one
    if redis.call('EXISTS', sk) == 1 then redis.call('DECRBY', sk, tokens_of(member)) end
  end
end
return removed
