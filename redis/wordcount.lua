#!lua name=wordcount
--[[
The commit protocol, on the server side. Every function runs atomically (Redis executes one
command at a time), so each is one step of the protocol that either happens whole or not at all.
An RDB snapshot therefore always holds a consistent state, and a replayed call changes nothing.

Every key a function touches arrives in KEYS (built by wordcount/keys.py); nothing here
concatenates key names. Python wrappers, one per function, live in wordcount/functions.py.

Job meta hash fields: plan, total, bytes, root, submitted, done, dead, words, done_bytes,
busy_ms, stolen, backups, duplicates, created_ms, finished_ms, state ("running" | "done").
The job is done when done + dead == total and no staged task is still being merged.
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hget_number(key, field)
  return tonumber(redis.call('HGET', key, field) or '0') or 0
end

-- Mark the job done (and drop it from the active set) once every task is accounted for.
local function finish_if_complete(meta, jobs, merges, job)
  local total = hget_number(meta, 'total')
  local settled = hget_number(meta, 'done') + hget_number(meta, 'dead')
  if settled >= total and redis.call('SCARD', merges) == 0 then
    if redis.call('HGET', meta, 'state') ~= 'done' then
      redis.call('HSET', meta, 'state', 'done', 'finished_ms', now_ms())
    end
    redis.call('SREM', jobs, job)
    return 1
  end
  return 0
end

-- Progress of an accepted commit (ARGV 4 job, 5 bytes, 6 words, 7 busy ms), then maybe finish.
local function record_done(meta, jobs, merges, args)
  redis.call('HINCRBY', meta, 'done', 1)
  redis.call('HINCRBY', meta, 'done_bytes', args[5])
  redis.call('HINCRBY', meta, 'words', args[6])
  redis.call('HINCRBY', meta, 'busy_ms', args[7])
  finish_if_complete(meta, jobs, merges, args[4])
end

-- Returns nil when the job exists and was submitted with the same plan, else an error marker.
local function check_plan(meta, plan)
  local current = redis.call('HGET', meta, 'plan')
  if not current then return 'missing' end
  if current ~= plan then return 'stale' end
  return nil
end

--[[ wc_submit: create the job (once) and append tasks with deterministic ids 0-<seq>.
KEYS: 1 stream, 2 meta, 3 jobs (set of active job names)
ARGV: 1 job, 2 plan id, 3 total tasks, 4 total bytes, 5 data root, 6 group,
      7 seq of the first task below, then 3 values per task: path, start, end
Returns: {tasks added by this call, tasks submitted so far}
Idempotent: tasks whose seq is <= meta.submitted are skipped, so replaying a batch or
re-submitting a whole job after a restart never duplicates a task. ]]
local function wc_submit(keys, args)
  local stream, meta, jobs = keys[1], keys[2], keys[3]
  local job, plan, total = args[1], args[2], tonumber(args[3])
  local current = redis.call('HGET', meta, 'plan')
  if current and current ~= plan then
    return redis.error_reply('WCCONFLICT job ' .. job .. ' exists with a different plan')
  end
  if not current then
    redis.call('DEL', stream)
    redis.call('XGROUP', 'CREATE', stream, args[6], '0', 'MKSTREAM')
    redis.call('HSET', meta, 'plan', plan, 'total', total, 'bytes', args[4], 'root', args[5],
      'submitted', 0, 'done', 0, 'dead', 0, 'words', 0, 'done_bytes', 0, 'busy_ms', 0,
      'stolen', 0, 'backups', 0, 'duplicates', 0, 'created_ms', now_ms(), 'state', 'running')
  end
  local submitted = hget_number(meta, 'submitted')
  local added = 0
  local seq = tonumber(args[7])
  for i = 8, #args, 3 do
    if seq > submitted then
      redis.call('XADD', stream, '0-' .. seq, 'path', args[i], 'start', args[i + 1],
        'end', args[i + 2])
      submitted = seq
      added = added + 1
    end
    seq = seq + 1
  end
  redis.call('HSET', meta, 'submitted', submitted)
  if redis.call('HGET', meta, 'state') ~= 'done' then
    redis.call('SADD', jobs, job)
  end
  return {added, submitted}
end

--[[ wc_commit: acknowledge a task and apply its counts, exactly once.
KEYS: 1 stream, 2 counts (zset), 3 meta, 4 jobs, 5 merges
ARGV: 1 group, 2 task id, 3 plan, 4 job, 5 bytes, 6 words, 7 busy ms, then word, count pairs
Returns: 1 applied; 0 duplicate (the task was already acknowledged: a straggler, a thief, a
replayed call); -1 the job is gone or was re-planned (nothing changed).
XACK returns 1 only for the first acknowledgement of a pending entry, and only then are the
counts added: a task's counts are applied at most once, and (since a task is only
acknowledged here or in wc_dead) exactly once when the job finishes. ]]
local function wc_commit(keys, args)
  local stream, counts, meta, jobs, merges = keys[1], keys[2], keys[3], keys[4], keys[5]
  if check_plan(meta, args[3]) then return -1 end
  if redis.call('XACK', stream, args[1], args[2]) == 0 then
    redis.call('HINCRBY', meta, 'duplicates', 1)
    return 0
  end
  for i = 8, #args, 2 do  -- a loop, not unpack(): unpack fails at ~8000 values
    redis.call('ZINCRBY', counts, args[i + 1], args[i])
  end
  record_done(meta, jobs, merges, args)
  return 1
end

--[[ wc_commit_staged: like wc_commit, for a task whose vocabulary is too big for one call.
The worker first HSETs its (word, count) pairs into a private stage hash (one per attempt;
HSET is idempotent, so a retried piece changes nothing). Here the task is acknowledged and,
only if XACK returned 1, the stage hash becomes the task's apply hash and joins the merge set;
wc_merge then applies it in bounded pieces.
KEYS: 1 stream, 2 meta, 3 jobs, 4 merges, 5 stage hash, 6 apply hash
ARGV: 1 group, 2 task id, 3 plan, 4 job, 5 bytes, 6 words, 7 busy ms
Returns: 1 accepted, 0 duplicate (stage discarded), -1 job gone or re-planned. ]]
local function wc_commit_staged(keys, args)
  local stream, meta, jobs, merges, stage, apply = keys[1], keys[2], keys[3], keys[4], keys[5],
    keys[6]
  if check_plan(meta, args[3]) then
    redis.call('DEL', stage)
    return -1
  end
  if redis.call('XACK', stream, args[1], args[2]) == 0 then
    redis.call('DEL', stage)
    redis.call('HINCRBY', meta, 'duplicates', 1)
    return 0
  end
  if redis.call('EXISTS', stage) == 1 then
    redis.call('RENAME', stage, apply)
    redis.call('PERSIST', apply)
    redis.call('SADD', merges, args[2])
  end
  record_done(meta, jobs, merges, args)
  return 1
end

--[[ wc_merge: apply the next bounded piece of an accepted staged task.
Each piece is read, applied and deleted in the same call, so it is applied exactly once,
whoever drives the merge (the committing worker, or any idle worker after it crashed).
The caller keeps the HSCAN cursor between calls (restarting at 0 would revisit buckets
already emptied and stall); fields are deleted as they are applied, so concurrent drivers with
their own cursors never apply a field twice.
KEYS: 1 apply hash, 2 counts, 3 meta, 4 jobs, 5 merges
ARGV: 1 task id, 2 HSCAN cursor, 3 max pairs per call (HSCAN's COUNT, a hint), 4 job
Returns: {pairs still to apply for this task (0: finished), next cursor}. ]]
local function wc_merge(keys, args)
  local apply, counts, meta, jobs, merges = keys[1], keys[2], keys[3], keys[4], keys[5]
  local scan = redis.call('HSCAN', apply, args[2], 'COUNT', tonumber(args[3]))
  local piece = scan[2]
  for i = 1, #piece, 2 do
    redis.call('ZINCRBY', counts, piece[i + 1], piece[i])
    redis.call('HDEL', apply, piece[i])
  end
  local left = redis.call('HLEN', apply)
  if left == 0 then
    redis.call('SREM', merges, args[1])
    finish_if_complete(meta, jobs, merges, args[4])
  end
  return {left, scan[1]}
end

--[[ wc_dead: set a task aside (poison: too many attempts, unreadable, escaping the root).
KEYS: 1 stream, 2 meta, 3 jobs, 4 merges, 5 dead (hash task id -> reason)
ARGV: 1 group, 2 task id, 3 plan, 4 job, 5 reason
Returns: 1 recorded, 0 already acknowledged (committed or dead already), -1 job gone. ]]
local function wc_dead(keys, args)
  local stream, meta, jobs, merges, dead = keys[1], keys[2], keys[3], keys[4], keys[5]
  if check_plan(meta, args[3]) then return -1 end
  if redis.call('XACK', stream, args[1], args[2]) == 0 then return 0 end
  redis.call('HSET', dead, args[2], args[5])
  redis.call('HINCRBY', meta, 'dead', 1)
  finish_if_complete(meta, jobs, merges, args[4])
  return 1
end

local function pending_entry(stream, group, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  return p[1]  -- {id, consumer, idle ms, deliveries} or nil
end

local function start_lease(leases, id, consumer)
  redis.call('HSET', leases, id, consumer .. '|' .. now_ms())
end

--[[ wc_claim_stale: take over one task idle longer than the claim timeout (XAUTOCLAIM).
KEYS: 1 stream, 2 meta, 3 leases
ARGV: 1 group, 2 consumer, 3 min idle ms
Returns: {id, {field, value, ...}, deliveries} or nil when nothing is stale. ]]
local function wc_claim_stale(keys, args)
  local stream, meta, leases = keys[1], keys[2], keys[3]
  if redis.call('EXISTS', stream) == 0 then return nil end
  local res = redis.call('XAUTOCLAIM', stream, args[1], args[2], args[3], '0-0', 'COUNT', 1)
  local entry = res[2][1]
  if not entry then return nil end
  local id = entry[1]
  local p = pending_entry(stream, args[1], id)
  start_lease(leases, id, args[2])
  redis.call('HINCRBY', meta, 'stolen', 1)
  return {id, entry[2], p and p[4] or 1}
end

--[[ wc_heartbeat: keep a task we are still working on (reset its idle time), or start our
lease on a freshly read task (ARGV 4 = "start").
KEYS: 1 stream, 2 leases
ARGV: 1 group, 2 consumer, 3 task id, 4 "start" | "beat"
Returns: 1 still ours, 0 lost (acknowledged, or claimed by another worker). ]]
local function wc_heartbeat(keys, args)
  local stream, leases = keys[1], keys[2]
  local p = pending_entry(stream, args[1], args[3])
  if not p or p[2] ~= args[2] then return 0 end
  redis.call('XCLAIM', stream, args[1], args[2], 0, args[3], 'JUSTID')
  if args[4] == 'start' then start_lease(leases, args[3], args[2]) end
  return 1
end

--[[ wc_speculate: a backup copy of a straggler's task (MapReduce's backup tasks). An idle
worker takes over the oldest attempt older than max(min ms, factor * mean task time); the
straggler keeps counting, and whichever commits first wins (XACK), the other is a duplicate.
KEYS: 1 stream, 2 meta, 3 leases
ARGV: 1 group, 2 consumer, 3 min age ms, 4 factor
Returns: {id, {field, value, ...}, deliveries} or nil. ]]
local function wc_speculate(keys, args)
  local stream, meta, leases = keys[1], keys[2], keys[3]
  if redis.call('EXISTS', stream) == 0 then return nil end
  local done = hget_number(meta, 'done')
  local threshold = tonumber(args[3])
  if done > 0 then
    threshold = math.max(threshold, tonumber(args[4]) * hget_number(meta, 'busy_ms') / done)
  end
  local now = now_ms()
  local best, best_age = nil, -1
  for _, p in ipairs(redis.call('XPENDING', stream, args[1], '-', '+', 100)) do
    local lease = redis.call('HGET', leases, p[1])
    if p[2] ~= args[2] and lease then
      local started = tonumber(string.match(lease, '|(%d+)$'))
      local age = now - started
      if age >= threshold and age > best_age then best, best_age = p[1], age end
    end
  end
  if not best then return nil end
  local claimed = redis.call('XCLAIM', stream, args[1], args[2], 0, best)
  local entry = claimed[1]
  if not entry then return nil end
  start_lease(leases, best, args[2])
  redis.call('HINCRBY', meta, 'backups', 1)
  local p = pending_entry(stream, args[1], best)
  return {best, entry[2], p and p[4] or 1}
end

redis.register_function('wc_submit', wc_submit)
redis.register_function('wc_commit', wc_commit)
redis.register_function('wc_commit_staged', wc_commit_staged)
redis.register_function('wc_merge', wc_merge)
redis.register_function('wc_dead', wc_dead)
redis.register_function('wc_claim_stale', wc_claim_stale)
redis.register_function('wc_heartbeat', wc_heartbeat)
redis.register_function('wc_speculate', wc_speculate)
