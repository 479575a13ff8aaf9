#!lua name=wordcount
--[[
The commit protocol, on the server side. Every function runs atomically (Redis executes one
command at a time), so each is one step of the protocol that either happens whole or not at all.
An RDB snapshot therefore always holds a consistent state, and a replayed call changes nothing.

Rules every function keeps (RedisRaft re-executes each call on every node):
- every key arrives in KEYS (built by wordcount/keys.py); nothing here concatenates key names;
- deterministic: the caller passes the time (`now`, ms); no TIME, no SCAN family, no SPOP /
  SRANDMEMBER, and no effect that depends on a key's expiry (no key here has a TTL);
- ARGV[1] is the caller's library identity (protocol version and build, a hash of this file's
  text): a caller of another identity is refused (WCVERSION), so two versions or builds of the
  commit logic never write to one job.
Python wrappers, one per function, live in wordcount/functions.py.

A job incarnation has an epoch (a nonce chosen by the client that created it). Every task entry
carries it, and every commit, stage, merge and dead letter must name it: a task counted for an
older incarnation (the job was deleted and re-planned under the same name) is refused, never
applied to the new one.

A task is settled exactly once: its id enters the `done` hash (with its word total) or the
`dead` hash, in the same call that applies its counts (or accepts its staged pieces). That hash,
not the stream's pending list, is the gate: whoever commits first wins, the others are no-ops.

Job meta hash fields (wordcount/protocol.py Meta names them for Python): plan, epoch, queue,
total, bytes, root, mount, errors (JSON: inputs the client could not plan), lineage (the
incarnations this one replaced, newest first), submitted, done,
dead, words, done_bytes, busy_ms, stolen, backups, duplicates, created_ms, finished_ms, state
("running" | "done" | "cancelled"); a shuffle job's: reduces (R; 0: one phase), phase ('map' |
'reduce'; '' for one phase), shuffled (maps whose output went to the partitions),
shuffled_words (their words), reduced (words the reduce tasks applied), reduce_busy_ms and
reduces_done (the reduces' own mean time, for backups; busy_ms is the maps').
The job is done when done + dead == total (+ R, a shuffle job in its reduce phase) and no
accepted staged piece is still unmerged. A
cancelled job takes no commit, stage, merge or dead letter any more (they answer GONE).

A job is created and deleted whole: every fixed key of it (JOB_KEYS, in the order of
wordcount/keys.py job_keys) is deleted in the one call that creates it and in the one call that
deletes it, so no half-deleted job can leave settled tasks, counts or merges to a new one. Stage
pieces carry the epoch in their name and are swept later (wc_sweep): unreferenced, they are
harmless. An operator's delete leaves a tombstone in the `deleted` hash naming the deleted
epoch and those it had replaced (`submit --fresh`): no client of any of them goes on (WCDELETED,
even when another incarnation exists by then), so a late submission never undoes a delete,
whereas a job that Redis lost (no tombstone) is resubmitted by its client.
]]

local PROTOCOL = '14'  -- 14: settle ARGV 11 the counted moment (was skipped ranges), no skipped key; 13: wc_event; 12: the history key (JOB_KEYS, settle_keys, the takes), settle ARGV 4 the worker; 11: wc_take's done and dead (KEYS 4, 5); 10: wc_submit's app (ARGV 16); 9: wc_take, wc_stage's leases and task id, WCRUNNING/WCCANCELLED
local BUILD = '@BUILD@'  -- replaced when the library is loaded: a hash of this file's text
local IDENTITY = PROTOCOL .. '/' .. BUILD

local STALE = -1    -- the job exists under another epoch (re-planned): nothing changed
local GONE = -2     -- the job does not exist: nothing changed
local RESTAGE = -3  -- a staged piece is missing (Redis rolled back): stage again, then commit
local LATE = -4     -- a shuffle job's map settled after its reduce phase began (a requeued dead
                    -- letter): nothing changed; commit its counts directly (wc_commit)

local function version_error(args)
  if args[1] ~= IDENTITY then
    return redis.error_reply('WCVERSION the wordcount library in Redis is ' .. IDENTITY ..
      ' (protocol/build), this caller ' .. tostring(args[1]))
  end
  return nil
end

local function hget_number(key, field)
  return tonumber(redis.call('HGET', key, field) or '0') or 0
end

--[[ The job's history, what the dashboard's timeline is drawn from: a list of
"<ms> <what> <task id> <worker>", appended by the Functions that take and settle tasks, at most
HISTORY_CAP entries (past it the oldest is dropped: RPUSH + LPOP, O(1) per entry). what: take
(a new task), steal (an expired lease or idle entry taken over), backup (a straggler's copy),
done (settled with its counts, or accepted to merge), dup (a duplicate commit), dead (set
aside); and, with task and worker '-', reduce (the map phase ended) and finished (the job is
done). It is a key of the job, rolled back, re-created and deleted with it: it shows what the
job's state holds, not what happened to the calls a rollback undid. ]]
local HISTORY_CAP = 20000
local GROUP = 'workers'  -- the stream queue's consumer group (wordcount/keys.py GROUP)

local function remember(history, now, what, id, worker, counted)
  if not history then return end
  local entry = now .. ' ' .. what .. ' ' .. id .. ' ' .. (worker ~= '' and worker or '-')
  if counted and counted ~= '' then entry = entry .. ' ' .. counted end
  local n = redis.call('RPUSH', history, entry)
  if n > HISTORY_CAP then redis.call('LPOP', history) end
end

-- nil when the job exists with this epoch and is not cancelled; else STALE or GONE.
local function check_epoch(meta, epoch)
  local current = redis.call('HMGET', meta, 'epoch', 'state')
  if not current[1] or current[2] == 'cancelled' then return GONE end
  if current[1] ~= epoch then return STALE end
  return nil
end

-- 'done' or 'dead' when the task is settled, else nil.
local function settled(done, dead, id)
  if redis.call('HEXISTS', done, id) == 1 then return 'done' end
  if redis.call('HEXISTS', dead, id) == 1 then return 'dead' end
  return nil
end

-- The active-jobs hash: job -> "<queue kind> <epoch>", what workers serve (and how).
local function activate(active, job, kind, epoch)
  redis.call('HSET', active, job, kind .. ' ' .. epoch)
end

-- Mark the job done (and drop it from the active jobs) once every task is accounted for.
-- A shuffle job (meta reduces R > 0) has two phases: when its last map task is settled (phase
-- 'map'), its R reduce tasks are queued in that same call (k.queue_reduces: settle_keys) and
-- the phase becomes 'reduce'; it is done when the maps and the reduces are all settled.
-- (k: meta, active, merges, and queue_reduces where the caller can queue tasks: a merge never
-- ends a map phase, since a shuffle job's maps never stage: wc_map_commit.)
local function finish_if_complete(k, job, now)
  local total = hget_number(k.meta, 'total')
  local settled_n = hget_number(k.meta, 'done') + hget_number(k.meta, 'dead')
  if settled_n < total or redis.call('SCARD', k.merges) ~= 0 then return 0 end
  local reduces = hget_number(k.meta, 'reduces')
  if reduces > 0 then
    if redis.call('HGET', k.meta, 'phase') == 'map' then
      if not k.queue_reduces then return 0 end  -- (never: see above)
      k.queue_reduces(total, reduces)
      redis.call('HSET', k.meta, 'phase', 'reduce')
      remember(k.history, now, 'reduce', '-', '-')
      return 0
    end
    if settled_n < total + reduces then return 0 end
  end
  if redis.call('HGET', k.meta, 'state') ~= 'done' then
    redis.call('HSET', k.meta, 'state', 'done', 'finished_ms', now)
    remember(k.history, now, 'finished', '-', '-')
  end
  redis.call('HDEL', k.active, job)
  return 1
end

-- Record an accepted task: settle it, count its progress (ARGV 8 bytes read, 9 words, 10 busy
-- ms). A map task's words count as `words`; a reduce task's (the words of its partition, over
-- every map) as `reduced`.
local function record_done(k, args, is_reduce)
  local id = args[5]
  redis.call('HSET', k.done, id, args[9])
  redis.call('ZREM', k.leases, id)
  redis.call('HINCRBY', k.meta, 'done', 1)
  redis.call('HINCRBY', k.meta, 'done_bytes', args[8])
  redis.call('HINCRBY', k.meta, is_reduce and 'reduced' or 'words', args[9])
  if is_reduce then  -- (its own mean: a reduce is not a straggling map, see backup_age)
    redis.call('HINCRBY', k.meta, 'reduce_busy_ms', args[10])
    redis.call('HINCRBY', k.meta, 'reduces_done', 1)
  else
    redis.call('HINCRBY', k.meta, 'busy_ms', args[10])
  end
end

--[[ Apply the (word, count) pairs list[first..] to the counts table. A reduce task's pairs are
its partition's totals: no other task writes a word of that partition, and the task applies
them once (settled once; a staged piece merged once), so while no late map added to the table
(meta `late`) its words are not in the table yet and ZADD of the totals is exactly ZINCRBY, at
one call per 1000 words instead of one per word. Any other pairs are increments (ZINCRBY), and
those of a shuffle job's map (settled after its reduce phase began: a requeued dead letter) set
`late`, after which the reduces increment too, so the two commute in any order. ]]
local ZADD_BATCH = 2000  -- values per ZADD (unpack fails at ~8000)

local function apply_pairs(meta, counts, list, first, reduce)
  if reduce and redis.call('HEXISTS', meta, 'late') == 0 then
    local batch, n = {}, 0
    for i = first, #list, 2 do
      batch[n + 1], batch[n + 2], n = list[i + 1], list[i], n + 2
      if n == ZADD_BATCH then
        redis.call('ZADD', counts, unpack(batch, 1, n))
        n = 0
      end
    end
    if n > 0 then redis.call('ZADD', counts, unpack(batch, 1, n)) end
    return
  end
  if not reduce and first < #list and hget_number(meta, 'reduces') > 0 then
    redis.call('HSET', meta, 'late', 1)
  end
  for i = first, #list, 2 do
    redis.call('ZINCRBY', counts, list[i + 1], list[i])
  end
end

-- A reduce task's spec: no input range, its partition (0-based) as the sixth value.
local function reduce_spec(r)
  return cjson.encode({'', 0, 0, '', '', r})
end

--[[ The keys and arguments that settling a task needs, for both queues.
KEYS: 1 meta, 2 active, 3 merges, 4 done, 5 dead, 6 leases, 7 shuffle, 8 specs,
      then the queue's own keys and the history (list): stream queue: 9 stream, 10 history;
      lease queue: 9 expiry (zset), 10 owners (hash), 11 queue (list), 12 notify (list),
      13 history
ARGV: 1 identity, 2 now, 3 queue kind ("stream" | "lease"), 4 the worker settling it (for the
      history), 5 task id, 6 epoch, 7 job, then what each function adds.
Returns the key table, with k.leave(id, keep): the task leaves its queue (it is settled). A
dead letter's stream entry is kept (acknowledged), so that wc_requeue can deliver it again:
`keep` is true for a task settled in `dead`, whoever calls. k.queue_reduces(maps, R): a shuffle
job's R reduce tasks become claimable (ids 0-<maps + 1> .. 0-<maps + R>, their specs written).
k.log(what, counted) appends to the job's history (remember; ``counted``: the worker's
moment its counting ended, ARGV 11 of a commit, '' unknown). Also returns the index of the first KEYS
entry after the history key. ]]
local function settle_keys(keys, args)
  local k = {meta = keys[1], active = keys[2], merges = keys[3], done = keys[4], dead = keys[5],
             leases = keys[6], shuffle = keys[7], specs = keys[8]}
  local last = args[3] == 'stream' and 9 or 12  -- the queue's last key
  k.history = keys[last + 1]
  k.log = function(what, counted)
    remember(k.history, args[2], what, args[5], args[4], counted)
  end
  if args[3] == 'stream' then
    -- acknowledged, and deleted so that no consumer group read can deliver it again (after a
    -- rollback the group's last-delivered id may lie before it)
    local stream, group = keys[9], GROUP
    k.leave = function(id, keep)
      redis.call('XACK', stream, group, id)
      if not keep then redis.call('XDEL', stream, id) end
    end
    k.queue_reduces = function(maps, reduces)
      for r = 0, reduces - 1 do
        local id = '0-' .. (maps + r + 1)
        redis.call('HSET', k.specs, id, reduce_spec(r))
        redis.call('XADD', stream, id, 'path', '', 'start', 0, 'end', 0, 'epoch', args[6],
          'ident', '', 'parts', '', 'reduce', r)
      end
    end
    return k, 11
  end
  local expiry, owners, queue, notify = keys[9], keys[10], keys[11], keys[12]
  k.leave = function(id)
    redis.call('ZREM', expiry, id)
    redis.call('HDEL', owners, id)
  end
  k.queue_reduces = function(maps, reduces)
    for r = 0, reduces - 1 do
      local id = '0-' .. (maps + r + 1)
      redis.call('HSET', k.specs, id, reduce_spec(r))
      redis.call('RPUSH', queue, id)
    end
    redis.call('RPUSH', notify, unpack({1, 1, 1, 1, 1, 1, 1, 1}, 1, math.min(reduces, 8)))
    redis.call('LTRIM', notify, 0, 63)
  end
  return k, 14
end

-- Whether task id is a reduce task of this job (a shuffle job's ids after its maps).
local function is_reduce(k, id)
  local seq = tonumber(string.match(id, '^0%-(%d+)$')) or 0
  return hget_number(k.meta, 'reduces') > 0 and seq > hget_number(k.meta, 'total')
end

--[[ A reduce's commit consumes its partition: "<r> <map id> <map id> ..." (ARGV `consumed`),
the map outputs it summed. Accepted only in the reduce phase (a reduce task held across a
rollback to the map phase is not a task of the job any more: STALE) and only if they are
exactly the partition's pieces: one per map that committed its output (meta `shuffled`), each
still there (else RESTAGE: read the partition again). Returns nil when the commit may go on,
with free(): deletes the pieces (the partition is freed in the call that settles its reduce). ]]
local function check_consumed(k, consumed)
  if redis.call('HGET', k.meta, 'phase') ~= 'reduce' then return STALE end
  local fields, r = {}, nil
  for word in string.gmatch(consumed, '%S+') do
    if not r then r = word else fields[#fields + 1] = r .. ':' .. word end
  end
  if #fields ~= hget_number(k.meta, 'shuffled') then return RESTAGE end
  for _, f in ipairs(fields) do
    if redis.call('HEXISTS', k.shuffle, f) == 0 then return RESTAGE end
  end
  return nil, function()
    for i = 1, #fields, 1000 do
      redis.call('HDEL', k.shuffle, unpack(fields, i, math.min(i + 999, #fields)))
    end
  end
end

-- A plain commit of a shuffle job's map task during its map phase is refused: its output must
-- go to the partitions (wc_map_commit), or the reduces would miss it.
local function map_phase_error(k, id)
  if redis.call('HGET', k.meta, 'phase') == 'map' and not is_reduce(k, id) then
    return redis.error_reply('WCPHASE task ' .. id .. ' is a map of a shuffle job in its map ' ..
      'phase: commit it with wc_map_commit')
  end
  return nil
end

--[[ wc_version: the identity (protocol/build) of the loaded library (read-only).
KEYS: none. ARGV: none. Returns: the identity string. ]]
local function wc_version(keys, args)
  return IDENTITY
end

-- ---------------------------------------------------------------------------------------------
-- A job as a whole: created, replaced, deleted in one call each.

-- The job's fixed keys, in the order of wordcount/keys.py JOB_KEYS (KEYS 1-15), then the
-- shared ones (16 active, 17 registry, 18 deleted).
local JOB_KEYS = {'meta', 'tasks', 'specs', 'counts', 'done', 'dead', 'leases', 'merges',
                  'queue', 'expiry', 'owners', 'attempts', 'notify', 'shuffle', 'history'}

local function job_keys(keys)
  local k = {}
  for i, name in ipairs(JOB_KEYS) do k[name] = keys[i] end
  k.active, k.registry, k.deleted = keys[16], keys[17], keys[18]
  return k
end

-- Delete every fixed key of the job and unlist it (its stage pieces stay: see wc_sweep).
local function drop_job(k, job)
  for _, name in ipairs(JOB_KEYS) do redis.call('DEL', k[name]) end
  redis.call('HDEL', k.active, job)
  redis.call('ZREM', k.registry, job)
end

-- A tombstone: "<ms> <how> <epoch> <epoch> ..." (how: deleted | expired): when the job was
-- deleted last, and the incarnations deleted so far, newest first (each delete adds the deleted
-- one and those it had replaced: its lineage), at most TOMBSTONE_EPOCHS of them.
local TOMBSTONE_EPOCHS = 16

local function tombstone_epochs(deleted, job)
  local t = redis.call('HGET', deleted, job)
  local epochs = {}
  if t then
    for e in string.gmatch(t, '%S+') do epochs[#epochs + 1] = e end
    table.remove(epochs, 1)  -- ms
    table.remove(epochs, 1)  -- how
  end
  return epochs
end

local function deleted_before(deleted, job, epoch)
  for _, e in ipairs(tombstone_epochs(deleted, job)) do
    if e == epoch then return true end
  end
  return false
end

-- The incarnations a job's meta hash names as replaced by it (its `lineage` field), newest
-- first.
local function lineage_of(meta)
  local epochs = {}
  for e in string.gmatch(redis.call('HGET', meta, 'lineage') or '', '%S+') do
    epochs[#epochs + 1] = e
  end
  return epochs
end

-- A space-separated list: these epochs, each once, in order, at most TOMBSTONE_EPOCHS.
local function epoch_list(epochs)
  local out, seen = {}, {}
  for _, e in ipairs(epochs) do
    if not seen[e] and #out < TOMBSTONE_EPOCHS then
      out[#out + 1] = e
      seen[e] = true
    end
  end
  return table.concat(out, ' ')
end

--[[ Create the job (ARGV of wc_submit): every fixed key deleted first (whatever a crash or an
older version left behind), the meta hash written (lineage: the incarnations this one replaced,
newest first), the job listed in the registry (zset job -> created ms); on the stream queue, the
stream and its group. The tombstone stays: the incarnations it names stay deleted. ]]
local function create_job(k, args, kind, lineage)
  drop_job(k, args[3])
  local phase = tonumber(args[15]) > 0 and 'map' or ''  -- a shuffle job begins with its maps
  redis.call('HSET', k.meta, 'plan', args[4], 'epoch', args[5], 'queue', kind, 'total', args[6],
    'bytes', args[7], 'root', args[8], 'mount', args[12], 'errors', args[11],
    'lineage', lineage, 'submitted', 0,
    'done', 0, 'dead', 0, 'words', 0, 'done_bytes', 0, 'busy_ms', 0, 'stolen', 0,
    'backups', 0, 'duplicates', 0, 'created_ms', args[2], 'state', 'running',
    'reduces', args[15], 'phase', phase, 'shuffled', 0,
    'shuffled_words', 0, 'reduced', 0, 'reduce_busy_ms', 0, 'reduces_done', 0,
    'app', args[16])
  redis.call('ZADD', k.registry, args[2], args[3])
  if kind == 'stream' then
    redis.call('XGROUP', 'CREATE', k.tasks, args[14], '0', 'MKSTREAM')
  end
end

-- Whether the replace mode (ARGV 13) lets this call replace the incarnation `epoch` (created at
-- `created` ms): '' never; '*' any other than ours (the first call of `submit --fresh`); or
-- "<since>,e1,e2," (its later calls): the incarnations this client replaced before, and any
-- created before its first call (since, ms) -- a rollback brought back one that its first call
-- replaced, or would have replaced had it not been deleted (or missing) then.
local function may_replace(mode, epoch, ours, created)
  if epoch == ours or mode == '' then return false end
  if mode == '*' then return true end
  local since, list = string.match(mode, '^(%d*)(,.*)$')
  if not list then return false end
  if string.find(list, ',' .. epoch .. ',', 1, true) then return true end
  return since ~= '' and tonumber(created or '') ~= nil and tonumber(created) < tonumber(since)
end

--[[ wc_submit: create the job (once) on its queue and append a batch of its tasks, in plan
order and without a gap. Task seq has id 0-<seq>; its spec [path, start, end, identity, parts]
goes to specs (the plan, read back by `wordcount result JOB`); stream queue: an entry 0-<seq> with the
same fields and the epoch; lease queue: the id in the list of tasks never taken.
KEYS: 1-19 as job_keys
ARGV: 1 identity, 2 now, 3 job, 4 plan id, 5 epoch (used only when this call creates the job),
      6 total tasks, 7 total bytes, 8 data root, 9 queue kind, 10 seq of the first task below,
      11 errors (JSON list of [path, why]: inputs that could not be planned), 12 mount (the
      client's data root: what a worker's data root stands for), 13 replace mode (see
      may_replace), 14 consumer group, 15 reduces (R > 0: a shuffle job of R reduce tasks,
      used only when this call creates the job; 0: one phase), 16 app (what the tasks' bytes
      become: wordcount.apps; part of the plan id), then 5 values per task: path,
      start, end, identity,
      parts ('' or, for a packed task, the JSON list of its ranges, each a list of path,
      start, end and identity: opaque here)
Returns: {tasks added by this call, tasks submitted so far, epoch of the job, state, epoch this
call replaced or ''}.
Gap-free and idempotent: a task is added only if it is the next one (seq == submitted + 1), so
replaying a batch adds nothing, and a batch that does not continue the job's sequence (the job
vanished and came back, a snapshot older than the batches before) adds nothing either: the
caller resumes at submitted + 1.
Errors: WCCONFLICT (the job exists with another plan or queue, nothing changed), WCDELETED
(the incarnation the caller follows, ARGV 5, was deleted by an operator -- itself, or one that
had replaced it: nothing changed, whatever incarnation exists now; a deleted one is never
created again). ]]
local function wc_submit(keys, args)
  local err = version_error(args)
  if err then return err end
  local k, job, kind = job_keys(keys), args[3], args[9]
  if deleted_before(k.deleted, job, args[5]) then
    return redis.error_reply('WCDELETED job ' .. job .. ' was deleted')
  end
  local cur = redis.call('HMGET', k.meta, 'plan', 'queue', 'epoch', 'created_ms')
  local replaced, lineage = '', ''
  if cur[1] and may_replace(args[13], cur[3], args[5], cur[4]) then
    replaced = cur[3]
    local older = lineage_of(k.meta)
    table.insert(older, 1, replaced)
    lineage = epoch_list(older)
    drop_job(k, job)
    cur = {}
  elseif cur[1] and cur[1] ~= args[4] then
    return redis.error_reply('WCCONFLICT job ' .. job .. ' exists with a different plan')
  elseif cur[1] and cur[2] ~= kind then
    return redis.error_reply('WCCONFLICT job ' .. job .. ' exists on the ' .. cur[2] ..
      ' queue')
  end
  if not cur[1] then create_job(k, args, kind, lineage) end
  local epoch = redis.call('HGET', k.meta, 'epoch')
  local submitted = hget_number(k.meta, 'submitted')
  local added, seq = 0, tonumber(args[10])
  for i = 17, #args, 5 do
    if seq == submitted + 1 then
      local id = '0-' .. seq
      redis.call('HSET', k.specs, id, cjson.encode({args[i], args[i + 1], args[i + 2],
                                                    args[i + 3], args[i + 4]}))
      if kind == 'stream' then
        redis.call('XADD', k.tasks, id, 'path', args[i], 'start', args[i + 1], 'end',
          args[i + 2], 'epoch', epoch, 'ident', args[i + 3], 'parts', args[i + 4])
      else
        redis.call('RPUSH', k.queue, id)
      end
      submitted = seq
      added = added + 1
    end
    seq = seq + 1
  end
  if added > 0 then
    redis.call('HSET', k.meta, 'submitted', submitted)
    if kind == 'lease' then  -- wake idle workers (BLPOP on notify)
      redis.call('RPUSH', k.notify, unpack({1, 1, 1, 1, 1, 1, 1, 1}, 1, math.min(added, 8)))
      redis.call('LTRIM', k.notify, 0, 63)
    end
  end
  local state = redis.call('HGET', k.meta, 'state')
  if state == 'running' then activate(k.active, job, kind, epoch) end
  return {added, submitted, epoch, state, replaced}
end

--[[ wc_delete: delete a job whole, leaving a tombstone of its epoch (an operator's delete, or
the expiry of a finished job).
KEYS: 1-19 as job_keys
ARGV: 1 identity, 2 now, 3 job, 4 epoch the caller saw ('' any: then the current one), 5 force
      ('1': a running job too), 6 how ('deleted' | 'expired'), 7 finished before (ms; '' any):
      delete only a job done or cancelled before then
Returns: 1 deleted, 0 not deleted (running, or finished too recently, with ARGV 7), -2 gone (no
such job, or another incarnation than the caller saw: nothing changed, so a replayed delete never
deletes a job created after it). Error WCRUNNING: the job is running and force is not set. ]]
local function wc_delete(keys, args)
  local err = version_error(args)
  if err then return err end
  local k, job = job_keys(keys), args[3]
  local cur = redis.call('HMGET', k.meta, 'epoch', 'state', 'finished_ms')
  if not cur[1] or (args[4] ~= '' and cur[1] ~= args[4]) then return GONE end
  if args[7] ~= '' then
    if cur[2] == 'running' or tonumber(cur[3] or '0') > tonumber(args[7]) then return 0 end
  elseif cur[2] == 'running' and args[5] ~= '1' then
    return redis.error_reply('WCRUNNING job ' .. job .. ' is running')
  end
  local epochs = lineage_of(k.meta)
  table.insert(epochs, 1, cur[1])
  for _, e in ipairs(tombstone_epochs(k.deleted, job)) do epochs[#epochs + 1] = e end
  drop_job(k, job)
  redis.call('HSET', k.deleted, job, args[2] .. ' ' .. args[6] .. ' ' .. epoch_list(epochs))
  return 1
end

--[[ wc_sweep: delete stage pieces of incarnations that no longer exist (a deleted or replaced
job's, never the current one's: those may be part of a commit under way).
KEYS: 1 meta, then the pieces
ARGV: 1 identity, then the epoch of each piece (from its name), in the order of KEYS 2..
Returns: the number of pieces deleted. ]]
local function wc_sweep(keys, args)
  local err = version_error(args)
  if err then return err end
  local current = redis.call('HGET', keys[1], 'epoch')
  local n = 0
  for i = 2, #keys do
    if args[i] ~= current then n = n + redis.call('DEL', keys[i]) end
  end
  return n
end

--[[ wc_prune: forget old tombstones (jobs.expire), each only if it is still the one the caller
read (a newer delete's tombstone stays).
KEYS: 1 deleted
ARGV: 1 identity, then job, tombstone pairs
Returns: the number of tombstones removed. ]]
local function wc_prune(keys, args)
  local err = version_error(args)
  if err then return err end
  local n = 0
  for i = 2, #args, 2 do
    if redis.call('HGET', keys[1], args[i]) == args[i + 1] then
      n = n + redis.call('HDEL', keys[1], args[i])
    end
  end
  return n
end

-- ---------------------------------------------------------------------------------------------
-- Settling a task (both queues).

--[[ wc_commit: settle a task and apply its counts, exactly once (both queues): a task of a
one-phase job, a reduce task of a shuffle job (its partition's totals, consumed in the same
call: check_consumed), or a map task that settles after its shuffle job's map phase ended (a
requeued dead letter: its counts go straight to the table, which the reduces' increments
commute with).
KEYS: settle_keys (8 + the queue's own + history), then counts (zset)
ARGV: settle_keys (1-7), 8 bytes read, 9 words, 10 busy ms, 11 counted (the worker's ms when
      its counting ended, for the history; '' unknown), 12 consumed ('' or, a reduce task: "<partition> <map id> ..."), then word,
      count pairs
Returns: 1 applied; 0 duplicate (already settled: a straggler, a thief, a replayed call);
-1 stale (the job was re-planned; a reduce task outside the reduce phase), -2 gone (nothing
changed in either case); -3 restage (a reduce task: its partition is not what it read). ]]
local function wc_commit(keys, args)
  local err = version_error(args)
  if err then return err end
  local k, next_key = settle_keys(keys, args)
  local bad = check_epoch(k.meta, args[6])
  if bad then return bad end
  local already = settled(k.done, k.dead, args[5])
  if already then
    k.leave(args[5], already == 'dead')
    redis.call('HINCRBY', k.meta, 'duplicates', 1)
    k.log('dup', args[11])
    return 0
  end
  local free = nil
  if args[12] ~= '' then
    bad, free = check_consumed(k, args[12])
    if bad then return bad end
  else
    err = map_phase_error(k, args[5])
    if err then return err end
  end
  k.leave(args[5])
  apply_pairs(k.meta, keys[next_key], args, 13, args[12] ~= '')
  if free then free() end
  record_done(k, args, args[12] ~= '')
  k.log('done', args[11])
  finish_if_complete(k, args[7], args[2])
  return 1
end

--[[ wc_map_commit: settle a shuffle job's map task, recording its output as R partitions (one
compressed, checksummed piece each, made by the worker: wordcount/shuffle.py) in the job's
shuffle hash ("<r>:<task id>" -> piece), only for its first commit. The call that settles the
last map queues the R reduce tasks (finish_if_complete).
KEYS: settle_keys (8 + the queue's own + history)
ARGV: settle_keys (1-7), 8 bytes read, 9 words, 10 busy ms, 11 counted (as wc_commit's), then the R
      pieces, partition 0 first
Returns: 1 applied, 0 duplicate, -1 stale, -2 gone, -4 late (the reduce phase began: a requeued
map; nothing changed, commit it with wc_commit). Error WCPHASE: not R pieces. ]]
local function wc_map_commit(keys, args)
  local err = version_error(args)
  if err then return err end
  local k = settle_keys(keys, args)
  local bad = check_epoch(k.meta, args[6])
  if bad then return bad end
  local already = settled(k.done, k.dead, args[5])
  if already then
    k.leave(args[5], already == 'dead')
    redis.call('HINCRBY', k.meta, 'duplicates', 1)
    k.log('dup', args[11])
    return 0
  end
  if redis.call('HGET', k.meta, 'phase') ~= 'map' then return LATE end
  local reduces = hget_number(k.meta, 'reduces')
  if #args - 11 ~= reduces then
    return redis.error_reply('WCPHASE task ' .. args[5] .. ': ' .. (#args - 11) ..
      ' partitions for a job of ' .. reduces .. ' reduce tasks')
  end
  k.leave(args[5])
  for r = 0, reduces - 1 do
    redis.call('HSET', k.shuffle, r .. ':' .. args[5], args[12 + r])
  end
  redis.call('HINCRBY', k.meta, 'shuffled', 1)
  redis.call('HINCRBY', k.meta, 'shuffled_words', args[9])
  record_done(k, args, false)
  k.log('done', args[11])
  finish_if_complete(k, args[7], args[2])
  return 1
end

--[[ wc_stage: write one piece of a big task's (word, count) pairs into its own list, for
wc_commit_staged. The piece is replaced whole (DEL + RPUSH in one call), so a retried or
replayed call leaves the same list, and a piece either exists complete or not at all.
The task leaves the leases zset: an attempt that is committing is never backed up (a backup
would commit through this same Redis, after it). A crashed or frozen committer still loses
the task to a thief (its heartbeats stop), which starts a new attempt and lease.
KEYS: 1 meta, 2 piece (list), 3 leases
ARGV: 1 identity, 2 epoch, 3 task id, then word, count pairs
Returns: 1 staged, -1 stale, -2 gone (nothing written). ]]
local function wc_stage(keys, args)
  local err = version_error(args)
  if err then return err end
  local bad = check_epoch(keys[1], args[2])
  if bad then return bad end
  redis.call('ZREM', keys[3], args[3])
  redis.call('DEL', keys[2])
  local step = 1000
  for i = 4, #args, step do
    redis.call('RPUSH', keys[2], unpack(args, i, math.min(i + step - 1, #args)))
  end
  return 1
end

-- Delete this attempt's pieces, except any already accepted (a replay of our own commit).
local function drop_pieces(keys, first, merges)
  for i = first, #keys do
    if redis.call('SISMEMBER', merges, keys[i]) == 0 then redis.call('DEL', keys[i]) end
  end
end

--[[ wc_commit_staged: like wc_commit, for a task whose vocabulary is too big for one call.
The worker first wrote its pairs with wc_stage into N piece lists. Here, only if every piece is
present and together they hold exactly the task's distinct words, the task is settled and its
pieces join the merge set; wc_merge then applies them one by one. A piece lost to a Redis
rollback is never mistaken for an empty task: the call answers RESTAGE and changes nothing.
KEYS: settle_keys (8 + the queue's own + history), then the pieces
ARGV: settle_keys (1-7), 8 bytes read, 9 words, 10 busy ms, 11 distinct words (pairs) in all
      pieces, 12 counted (as wc_commit's 11), 13 consumed (as wc_commit's 12)
Returns: 1 accepted, 0 duplicate (pieces discarded), -1 stale, -2 gone, -3 restage (a piece is
missing; a reduce task: or its partition is not what it read). ]]
local function wc_commit_staged(keys, args)
  local err = version_error(args)
  if err then return err end
  local k, first = settle_keys(keys, args)
  local bad = check_epoch(k.meta, args[6])
  if bad then
    drop_pieces(keys, first, k.merges)
    return bad
  end
  local already = settled(k.done, k.dead, args[5])
  if already then
    k.leave(args[5], already == 'dead')
    drop_pieces(keys, first, k.merges)
    redis.call('HINCRBY', k.meta, 'duplicates', 1)
    k.log('dup', args[12])
    return 0
  end
  local free = nil
  if args[13] ~= '' then
    bad, free = check_consumed(k, args[13])
    if bad then
      if bad ~= RESTAGE then drop_pieces(keys, first, k.merges) end
      return bad
    end
  else
    err = map_phase_error(k, args[5])
    if err then return err end
  end
  local values = 0
  for i = first, #keys do
    if redis.call('EXISTS', keys[i]) == 0 then return RESTAGE end
    values = values + redis.call('LLEN', keys[i])
  end
  if values ~= 2 * tonumber(args[11]) then return RESTAGE end
  k.leave(args[5])
  for i = first, #keys do redis.call('SADD', k.merges, keys[i]) end
  if free then free() end
  record_done(k, args, args[13] ~= '')
  k.log('done', args[12])
  finish_if_complete(k, args[7], args[2])
  return 1
end

--[[ wc_merge: apply one accepted staged piece. The piece is read, applied and deleted in the
same call, so it is applied exactly once, whoever drives the merge (the committing worker, or
any idle worker after it crashed).
KEYS: 1 piece, 2 counts, 3 meta, 4 active, 5 merges
ARGV: 1 identity, 2 now, 3 epoch, 4 job
Returns: 1 applied, 0 nothing to do (already merged), -1 stale, -2 gone.
Error WCLOST: an accepted piece is missing (never expected: no key here has a TTL). ]]
local function wc_merge(keys, args)
  local err = version_error(args)
  if err then return err end
  local piece, counts, meta, active, merges = keys[1], keys[2], keys[3], keys[4], keys[5]
  local bad = check_epoch(meta, args[3])
  if bad then return bad end
  if redis.call('SISMEMBER', merges, piece) == 0 then return 0 end
  if redis.call('EXISTS', piece) == 0 then
    return redis.error_reply('WCLOST accepted piece ' .. piece .. ' is missing')
  end
  -- (the task that staged it: a reduce applies its totals, see apply_pairs)
  local id = string.match(piece, ':stage:[^:]*:([^:]*):')
  apply_pairs(meta, counts, redis.call('LRANGE', piece, 0, -1), 1,
              is_reduce({meta = meta}, id or ''))
  redis.call('DEL', piece)
  redis.call('SREM', merges, piece)
  finish_if_complete({meta = meta, active = active, merges = merges}, args[4], args[2])
  return 1
end

--[[ wc_dead: set a task aside (poison: too many attempts, unreadable, changed since planning,
escaping the root).
KEYS: settle_keys (8 + the queue's own + history)
ARGV: settle_keys (1-7), 8 reason
Returns: 1 recorded, 0 already settled, -1 stale, -2 gone. ]]
local function wc_dead(keys, args)
  local err = version_error(args)
  if err then return err end
  local k = settle_keys(keys, args)
  local bad = check_epoch(k.meta, args[6])
  if bad then return bad end
  local already = settled(k.done, k.dead, args[5])
  k.leave(args[5], already ~= 'done')
  if already then return 0 end
  redis.call('HSET', k.dead, args[5], args[8])
  redis.call('ZREM', k.leases, args[5])
  redis.call('HINCRBY', k.meta, 'dead', 1)
  k.log('dead')
  finish_if_complete(k, args[7], args[2])
  return 1
end

-- ---------------------------------------------------------------------------------------------
-- The stream queue: a consumer group's pending list holds the leases (XAUTOCLAIM steals).

local function pending_entry(stream, group, id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  return p[1]  -- {id, consumer, idle ms, deliveries} or nil
end

-- The meta epoch when the job runs on the stream queue, else nil (deleted, or re-created on the
-- lease queue meanwhile).
local function stream_job(stream, meta)
  local cur = redis.call('HMGET', meta, 'epoch', 'queue')
  if not cur[1] or cur[2] ~= 'stream' or redis.call('EXISTS', stream) == 0 then return nil end
  return cur[1]
end

--[[ wc_take: deliver one new task to this consumer and start its lease, in one call: no entry
is ever delivered without a lease (read, then leased, a worker dying between the two calls left
an entry that only XAUTOCLAIM found, after a claim timeout), and a take is one round trip.
A settled task is never delivered: its entry is acknowledged instead (and deleted, unless it is
a dead letter's, kept for wc_requeue). Such entries exist: after a rollback, the holder of a
task taken after the snapshot may set it aside (wc_dead) while the restored stream has not
delivered it yet; and a requeue goes back (XGROUP SETID) over dead letters it did not requeue.
Delivered, one made a finished job look unfinished (done, with a task pending) while it was
held, and cost a recount.
KEYS: 1 stream, 2 meta, 3 leases (zset task id -> attempt start ms), 4 done, 5 dead, 6 history
ARGV: 1 identity, 2 now, 3 group, 4 consumer
Returns: {id, {field, value, ...}, 1}, or nil when there is no new entry (or the job no longer
runs on the stream queue; or TAKE_SKIPS settled ones were acknowledged: the caller comes
again). ]]
local TAKE_SKIPS = 1000

local function wc_take(keys, args)
  local err = version_error(args)
  if err then return err end
  local stream, meta, leases, done, dead = keys[1], keys[2], keys[3], keys[4], keys[5]
  if not stream_job(stream, meta) then return nil end
  for _ = 1, TAKE_SKIPS do
    local res = redis.call('XREADGROUP', 'GROUP', args[3], args[4], 'COUNT', 1,
                           'STREAMS', stream, '>')
    local entry = res and res[1] and res[1][2][1]
    if not entry then return nil end
    local id = entry[1]
    local already = settled(done, dead, id)
    if not already then
      redis.call('ZADD', leases, args[2], id)
      remember(keys[6], args[2], 'take', id, args[4])
      return {id, entry[2], 1}
    end
    redis.call('XACK', stream, args[3], id)
    if already == 'done' then redis.call('XDEL', stream, id) end
  end
  return nil
end

--[[ wc_claim_stale: take over one task idle longer than the claim timeout (XAUTOCLAIM): its
holder died or froze. A delivery: it counts towards --max-attempts.
KEYS: 1 stream, 2 meta, 3 leases (zset task id -> attempt start ms), 4 history
ARGV: 1 identity, 2 now, 3 group, 4 consumer, 5 min idle ms
Returns: {id, {field, value, ...}, deliveries} or nil when nothing is stale. ]]
local function wc_claim_stale(keys, args)
  local err = version_error(args)
  if err then return err end
  local stream, meta, leases = keys[1], keys[2], keys[3]
  if not stream_job(stream, meta) then return nil end
  local res = redis.call('XAUTOCLAIM', stream, args[3], args[4], args[5], '0-0', 'COUNT', 1)
  local entry = res[2][1]
  if not entry then return nil end
  local id = entry[1]
  local p = pending_entry(stream, args[3], id)
  redis.call('ZADD', leases, args[2], id)
  redis.call('HINCRBY', meta, 'stolen', 1)
  remember(keys[4], args[2], 'steal', id, args[4])
  return {id, entry[2], p and p[4] or 1}
end

--[[ wc_heartbeat: keep a task we are still working on (reset its idle time).
KEYS: 1 stream
ARGV: 1 identity, 2 now, 3 group, 4 consumer, 5 task id
Returns: 1 still ours, 0 lost (settled, claimed by another worker, or the job is gone). ]]
local function wc_heartbeat(keys, args)
  local err = version_error(args)
  if err then return err end
  local stream = keys[1]
  if redis.call('EXISTS', stream) == 0 then return 0 end
  local p = pending_entry(stream, args[3], args[5])
  if not p or p[2] ~= args[4] then return 0 end
  redis.call('XCLAIM', stream, args[3], args[4], 0, args[5], 'JUSTID')
  return 1
end

-- The backup threshold: max(min ms, factor * mean task time so far). A shuffle job's reduce
-- phase compares its reduces with the reduces done so far (none yet: no backup -- a reduce
-- sums a whole partition and takes longer than a map, so the maps' mean would back up every
-- one of them; a dead holder's reduce is still taken over after the claim timeout).
local function backup_age(meta, min_ms, factor)
  local threshold = tonumber(min_ms)
  if redis.call('HGET', meta, 'phase') == 'reduce' then
    local reduced = hget_number(meta, 'reduces_done')
    if reduced == 0 then return math.huge end
    return math.max(threshold,
                    tonumber(factor) * hget_number(meta, 'reduce_busy_ms') / reduced)
  end
  local maps = hget_number(meta, 'done') - hget_number(meta, 'reduces_done')
  if maps > 0 then
    threshold = math.max(threshold, tonumber(factor) * hget_number(meta, 'busy_ms') / maps)
  end
  return threshold
end

--[[ wc_speculate: a backup copy of a straggler's task (MapReduce's backup tasks). An idle
worker takes over the oldest running attempt (lowest start in the leases zset, so the whole
job is considered, in start order) older than max(min ms, factor * mean task time); the
straggler keeps counting, and whichever commits first wins, the other is a duplicate. A backup
is not a delivery: the entry keeps its delivery count (RETRYCOUNT), since only failed or expired
attempts are evidence of a poison task.
KEYS: 1 stream, 2 meta, 3 leases, 4 history
ARGV: 1 identity, 2 now, 3 group, 4 consumer, 5 min age ms, 6 factor
Returns: {id, {field, value, ...}, deliveries} or nil. ]]
local function wc_speculate(keys, args)
  local err = version_error(args)
  if err then return err end
  local stream, meta, leases = keys[1], keys[2], keys[3]
  if not stream_job(stream, meta) then return nil end
  local now = tonumber(args[2])
  local threshold = backup_age(meta, args[5], args[6])
  if threshold == math.huge then return nil end
  -- oldest first; every lease older than the threshold is a candidate, the rest are younger
  local old = redis.call('ZRANGE', leases, '-inf', now - threshold, 'BYSCORE', 'LIMIT', 0, 64)
  for _, id in ipairs(old) do
    local p = pending_entry(stream, args[3], id)
    if not p then
      redis.call('ZREM', leases, id)  -- settled meanwhile: no longer running
    elseif p[2] ~= args[4] then
      local claimed = redis.call('XCLAIM', stream, args[3], args[4], 0, id, 'RETRYCOUNT', p[4])
      local entry = claimed[1]
      if entry then
        redis.call('ZADD', leases, args[2], id)
        redis.call('HINCRBY', meta, 'backups', 1)
        remember(keys[4], args[2], 'backup', id, args[4])
        return {id, entry[2], p[4]}
      end
    end
  end
  return nil
end

-- ---------------------------------------------------------------------------------------------
-- The lease queue: no stream command (RedisRaft refuses them). Tasks never taken wait in a
-- list; a taken task has a deadline in the expiry zset, an owner and a delivery count; an
-- expired deadline makes it claimable again. Times are the callers' clocks (ARGV now), which
-- every caller keeps in step with the server's (wordcount/protocol.py Clock).

-- The task's fields as the stream queue returns them: {path, P, start, S, end, E, epoch, X,
-- ident, I, parts, R, reduce, r} (reduce: '' for a map task, else its partition).
local function lease_entry(specs, id, epoch)
  local spec = cjson.decode(redis.call('HGET', specs, id))
  return {'path', spec[1], 'start', spec[2], 'end', spec[3], 'epoch', epoch, 'ident', spec[4],
          'parts', spec[5], 'reduce', spec[6] or ''}
end

-- Start an attempt of task id by consumer: deadline, owner, start time; a delivery (counted
-- towards --max-attempts) unless it is a backup copy. Returns the deliveries so far.
local function lease_start(k, id, args, delivery)
  local now = tonumber(args[2])
  redis.call('ZADD', k.expiry, now + tonumber(args[4]), id)
  redis.call('HSET', k.owners, id, args[3])
  redis.call('ZADD', k.leases, now, id)
  if not delivery then return tonumber(redis.call('HGET', k.attempts, id) or '1') end
  return redis.call('HINCRBY', k.attempts, id, 1)
end

local function lease_keys(keys)
  return {meta = keys[1], queue = keys[2], specs = keys[3], expiry = keys[4], owners = keys[5],
          attempts = keys[6], leases = keys[7], notify = keys[8], done = keys[9],
          dead = keys[10], history = keys[11]}
end

-- The meta epoch when the job runs on the lease queue, else nil.
local function lease_job(meta)
  local cur = redis.call('HMGET', meta, 'epoch', 'queue')
  if cur[2] ~= 'lease' then return nil end
  return cur[1]
end

--[[ wc_lease_claim: take the task whose lease expired first (a dead or stalled worker's), else
the next task never taken. A task already settled is skipped (after a rollback, a worker that
counted it before can settle it while it still waits in the list: it must not be leased again).
KEYS: 1 meta, 2 queue (list of ids never taken), 3 specs, 4 expiry, 5 owners, 6 attempts,
      7 leases, 8 notify (list), 9 done, 10 dead, 11 history
ARGV: 1 identity, 2 now, 3 consumer, 4 lease ms
Returns: {id, {field, value, ...}, deliveries, "stale" | "new"} or nil. ]]
local function wc_lease_claim(keys, args)
  local err = version_error(args)
  if err then return err end
  local k = lease_keys(keys)
  local epoch = lease_job(k.meta)
  if not epoch then return nil end
  local how = 'stale'
  local id = redis.call('ZRANGE', k.expiry, '-inf', args[2], 'BYSCORE', 'LIMIT', 0, 1)[1]
  if id then
    redis.call('HINCRBY', k.meta, 'stolen', 1)
  else
    how = 'new'
    repeat  -- (an id without a spec is not a task of this incarnation: never leased)
      id = redis.call('LPOP', k.queue)
      if not id then return nil end
    until not settled(k.done, k.dead, id) and redis.call('HEXISTS', k.specs, id) == 1
  end
  local deliveries = lease_start(k, id, args, true)
  remember(k.history, args[2], how == 'new' and 'take' or 'steal', id, args[3])
  return {id, lease_entry(k.specs, id, epoch), deliveries, how}
end

--[[ wc_lease_heartbeat: extend our lease (deadline = now + lease ms) if we still own the task.
KEYS: 1 expiry, 2 owners
ARGV: 1 identity, 2 now, 3 consumer, 4 task id, 5 lease ms
Returns: 1 still ours, 0 lost (settled, taken over, or the job is gone). ]]
local function wc_lease_heartbeat(keys, args)
  local err = version_error(args)
  if err then return err end
  if redis.call('HGET', keys[2], args[4]) ~= args[3] then return 0 end
  if not redis.call('ZSCORE', keys[1], args[4]) then return 0 end
  redis.call('ZADD', keys[1], tonumber(args[2]) + tonumber(args[5]), args[4])
  return 1
end

--[[ wc_lease_speculate: a backup copy of a straggler's task, as wc_speculate does (not a
delivery).
KEYS: as wc_lease_claim (1-11)
ARGV: 1 identity, 2 now, 3 consumer, 4 lease ms, 5 min age ms, 6 factor
Returns: {id, {field, value, ...}, deliveries, "backup"} or nil. ]]
local function wc_lease_speculate(keys, args)
  local err = version_error(args)
  if err then return err end
  local k = lease_keys(keys)
  local epoch = lease_job(k.meta)
  if not epoch then return nil end
  local threshold = backup_age(k.meta, args[5], args[6])
  if threshold == math.huge then return nil end
  local old = redis.call('ZRANGE', k.leases, '-inf', tonumber(args[2]) - threshold, 'BYSCORE',
    'LIMIT', 0, 64)
  for _, id in ipairs(old) do
    local owner = redis.call('HGET', k.owners, id)
    if not owner then
      redis.call('ZREM', k.leases, id)  -- settled meanwhile: no longer running
    elseif owner ~= args[3] then
      redis.call('HINCRBY', k.meta, 'backups', 1)
      local deliveries = lease_start(k, id, args, false)
      remember(k.history, args[2], 'backup', id, args[3])
      return {id, lease_entry(k.specs, id, epoch), deliveries, 'backup'}
    end
  end
  return nil
end

-- ---------------------------------------------------------------------------------------------
-- The shared event feed: what the processes around Redis saw, kept in Redis (the dashboard's
-- feed and markers, the same after it restarts).

--[[ wc_event: record an event in the shared feed, a list of "<ms> <kind> <job|-> <source>
<text>" (newest last, at most EVENTS_CAP: RPUSH, then LPOP past it). Its writers: a client that
resubmitted a job Redis lost (a rollback, a restart from nothing), a worker that found Redis
started anew (a new run_id). A run id makes the event once per Redis start, whoever notices it
first: it is recorded only if that run id is not the one recorded last (a rollback restores
an older one, a restart from nothing none, so each start is recorded once).
KEYS: 1 events (list), 2 run (string: the run id recorded last)
ARGV: 1 identity, 2 the event's time (ms), 3 kind (one word), 4 job ('' none), 5 source (one
      word: who saw it), 6 text, 7 run id ('' none)
Returns: 1 recorded, 0 not (that run id was recorded already). ]]
local EVENTS_CAP = 2000

local function wc_event(keys, args)
  local err = version_error(args)
  if err then return err end
  if args[7] ~= '' then
    if redis.call('GET', keys[2]) == args[7] then return 0 end
    redis.call('SET', keys[2], args[7])
  end
  local job = args[4] ~= '' and args[4] or '-'
  local n = redis.call('RPUSH', keys[1], args[2] .. ' ' .. args[3] .. ' ' .. job .. ' ' ..
                                         args[5] .. ' ' .. args[6])
  if n > EVENTS_CAP then redis.call('LPOP', keys[1]) end
  return 1
end

-- ---------------------------------------------------------------------------------------------
-- Operating jobs (wordcount cancel / requeue). Each names the incarnation (epoch) the operator
-- saw: a replayed call never acts on a job created after it.

-- nil when the job exists as the incarnation the caller saw ('' any), else GONE.
local function operated(meta, epoch)
  local current = redis.call('HGET', meta, 'epoch')
  if not current or (epoch ~= '' and current ~= epoch) then return GONE end
  return nil
end

--[[ wc_cancel: stop a running job. It leaves the active jobs (no worker takes its tasks any
more) and every later commit, stage, merge or dead letter of it answers GONE (check_epoch), so
its partial counts stay as they are; the job and its keys stay until deleted or expired.
KEYS: 1 meta, 2 active
ARGV: 1 identity, 2 now, 3 job, 4 epoch the caller saw ('' any)
Returns: 1 cancelled, 0 not running (already done or cancelled: nothing changed), -2 gone. ]]
local function wc_cancel(keys, args)
  local err = version_error(args) or operated(keys[1], args[4])
  if err then return err end
  local state = redis.call('HGET', keys[1], 'state')
  if state ~= 'running' then return 0 end
  redis.call('HSET', keys[1], 'state', 'cancelled', 'finished_ms', args[2])
  redis.call('HDEL', keys[2], args[3])
  return 1
end

-- The seq of the stream group's last-delivered id (XINFO GROUPS), or nil.
local function last_delivered_seq(stream, group)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #g, 2 do fields[g[i]] = g[i + 1] end
    if fields['name'] == group then
      return tonumber(string.match(fields['last-delivered-id'], '^%d+%-(%d+)$'))
    end
  end
  return nil
end

--[[ wc_requeue: give dead-lettered tasks new attempts (after their cause was fixed). Each named
task that is still in the dead hash leaves it, and goes back to its queue: on the lease queue
to the list of tasks never taken, with its delivery count reset; on the stream queue (where a
dead letter's entry stays, acknowledged: no call ever deletes it) by moving the group's
last-delivered id back to just before the first of them -- never forward, which would skip
entries not delivered yet -- so that the group delivers them again (with any later entry still
held by a worker: a second attempt of those, whose commit the done hash settles once). A dead
letter whose task is not submitted (again) yet -- its stream entry, or its spec on the lease
queue, is missing: Redis lost the job and its client has not resubmitted that far -- is left
dead (never a task that no read can deliver, nor one no claim can read); the client's
submission makes it requeueable.
The job runs again until every task is settled once more.
KEYS: 1 meta, 2 active, 3 dead, then stream queue: 4 stream; lease queue: 4 queue, 5 attempts,
      6 notify, 7 specs
ARGV: 1 identity, 2 now, 3 queue kind, 4 group, 5 job, 6 epoch the caller saw ('' any), then
      task ids in plan order (the caller reads them from the dead hash: no HKEYS here, whose
      order differs between nodes)
Returns: tasks requeued, or -2 gone. Error WCCANCELLED: the job is cancelled. ]]
local function wc_requeue(keys, args)
  local err = version_error(args) or operated(keys[1], args[6])
  if err then return err end
  local meta, active, dead = keys[1], keys[2], keys[3]
  local state = redis.call('HGET', meta, 'state')
  if state == 'cancelled' then
    return redis.error_reply('WCCANCELLED job ' .. args[5] .. ' is cancelled: submit it again')
  end
  local requeued, first = 0, nil
  for i = 7, #args do
    local id = args[i]
    if redis.call('HEXISTS', dead, id) == 1 then
      if args[3] == 'lease' then
        if redis.call('HEXISTS', keys[7], id) == 1 then
          redis.call('HDEL', dead, id)
          redis.call('HDEL', keys[5], id)
          redis.call('RPUSH', keys[4], id)
          requeued = requeued + 1
        end
      elseif #redis.call('XRANGE', keys[4], id, id) == 1 then
        redis.call('HDEL', dead, id)
        requeued = requeued + 1
        local seq = tonumber(string.match(id, '^0%-(%d+)$'))
        if seq and (not first or seq < first) then first = seq end
      end
    end
  end
  if requeued == 0 then return 0 end
  if args[3] == 'lease' then
    redis.call('RPUSH', keys[6], unpack({1, 1, 1, 1, 1, 1, 1, 1}, 1, math.min(requeued, 8)))
    redis.call('LTRIM', keys[6], 0, 63)
  elseif first then
    local last = last_delivered_seq(keys[4], args[4])
    if last and first - 1 < last then
      redis.call('XGROUP', 'SETID', keys[4], args[4], '0-' .. (first - 1))
    end
  end
  redis.call('HINCRBY', meta, 'dead', -requeued)
  redis.call('HSET', meta, 'state', 'running')
  redis.call('HDEL', meta, 'finished_ms')
  activate(active, args[5], args[3], redis.call('HGET', meta, 'epoch'))
  return requeued
end

redis.register_function{function_name = 'wc_version', callback = wc_version,
  flags = {'no-writes'}}
redis.register_function('wc_submit', wc_submit)
redis.register_function('wc_delete', wc_delete)
redis.register_function('wc_sweep', wc_sweep)
redis.register_function('wc_prune', wc_prune)
redis.register_function('wc_commit', wc_commit)
redis.register_function('wc_map_commit', wc_map_commit)
redis.register_function('wc_stage', wc_stage)
redis.register_function('wc_commit_staged', wc_commit_staged)
redis.register_function('wc_merge', wc_merge)
redis.register_function('wc_dead', wc_dead)
redis.register_function('wc_take', wc_take)
redis.register_function('wc_claim_stale', wc_claim_stale)
redis.register_function('wc_heartbeat', wc_heartbeat)
redis.register_function('wc_speculate', wc_speculate)
redis.register_function('wc_lease_claim', wc_lease_claim)
redis.register_function('wc_lease_heartbeat', wc_lease_heartbeat)
redis.register_function('wc_lease_speculate', wc_lease_speculate)
redis.register_function('wc_cancel', wc_cancel)
redis.register_function('wc_requeue', wc_requeue)
redis.register_function('wc_event', wc_event)
