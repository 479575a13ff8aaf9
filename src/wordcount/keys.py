"""Every Redis key name, in one place. Nothing else formats a key.

A job's keys share the hash tag ``{job}`` so a job lives in one slot (cluster/RedisRaft
friendly), and Lua receives all of them in KEYS.

    wc:active                    hash   running jobs: job -> "<queue kind> <epoch>" (what workers
                                        serve, and how)
    wc:registry                  zset   every job kept in Redis -> its creation ms
    wc:deleted                   hash   tombstones: job -> "<ms> <how> <epoch> ..." -- when it
                                        was deleted (or expired) last, and the incarnations
                                        deleted so far with those they had replaced, newest
                                        first (at most 16): never created again
    wc:workers                   hash   worker name -> JSON of what it does (wordcount workers)
    wc:{J}:tasks                     stream tasks, id 0-<seq>, fields path/start/end/epoch/
                                            ident; group "workers"
    wc:{J}:meta                      hash   plan, epoch, totals, progress counters, state
    wc:{J}:counts                    zset   word -> count (the result)
    wc:{J}:done                      hash   task id -> its word total (settled: applied)
    wc:{J}:dead                      hash   task id -> reason (settled: dead letters)
    wc:{J}:leases                    zset   task id -> start ms of its current attempt
    wc:{J}:specs                     hash   task id -> JSON [path, start, end, ident] (the plan)
    wc:{J}:merges                    set    accepted stage pieces not yet applied (key names)
    wc:{J}:stage:<epoch>:<id>:<attempt>:<k>
                                     list   piece k of a big task's word, count pairs
    wc:{J}:shuffle                   hash   a shuffle job's map outputs: "<r>:<map id>" -> the
                                            map's partition r (wordcount/shuffle.py), until
                                            reduce r commits
  lease queue only (no streams: RedisRaft refuses them):
    wc:{J}:queue                     list   ids of tasks never taken, in plan order
    wc:{J}:expiry                    zset   task id -> lease deadline ms (taken, unsettled)
    wc:{J}:owners                    hash   task id -> consumer holding its current lease
    wc:{J}:attempts                  hash   task id -> deliveries so far
    wc:{J}:notify                    list   wake-up tokens for idle workers (BLPOP)
"""

from __future__ import annotations

PREFIX = "wc"
GROUP = "workers"


def active() -> str:
    return f"{PREFIX}:active"


def deleted() -> str:
    return f"{PREFIX}:deleted"


def registry() -> str:
    return f"{PREFIX}:registry"


def workers() -> str:
    return f"{PREFIX}:workers"


def events() -> str:
    """List: the shared event feed, "<ms> <kind> <job|-> <source> <text>" (events.py)."""
    return f"{PREFIX}:events"


def run() -> str:
    """String: the Redis run id the event feed recorded last (one event per Redis start)."""
    return f"{PREFIX}:run"


def _job(job: str, name: str) -> str:
    return f"{PREFIX}:{{{job}}}:{name}"


def tasks(job: str) -> str:
    return _job(job, "tasks")


def meta(job: str) -> str:
    return _job(job, "meta")


def counts(job: str) -> str:
    return _job(job, "counts")


def dead(job: str) -> str:
    return _job(job, "dead")


def done(job: str) -> str:
    return _job(job, "done")


def history(job: str) -> str:
    """List: "<ms> <what> <task id> <worker>[ <counted ms>]" per take and settle (a commit's
    done or dup also names the worker's moment its counting ended), the newest last, capped
    (HISTORY_CAP in wordcount.lua): the dashboard's timeline of the job."""
    return _job(job, "history")


def shuffle(job: str) -> str:
    """Hash: "<partition>:<map task id>" -> that map's output for that partition (a piece:
    wordcount/shuffle.py), written by the map's first commit, freed by its reduce's."""
    return _job(job, "shuffle")


def leases(job: str) -> str:
    return _job(job, "leases")


def merges(job: str) -> str:
    return _job(job, "merges")


def stage(job: str, epoch: str, task_id: str, attempt: str, piece: int) -> str:
    return _job(job, f"stage:{epoch}:{task_id}:{attempt}:{piece}")


def stage_pattern(job: str) -> str:
    """SCAN pattern matching every stage piece of a job, of any incarnation."""
    return job_pattern(job)[:-1] + "stage:*"


def stage_epoch(key: str) -> str:
    """The epoch a stage piece's name carries (``stage`` above)."""
    return key.split(":stage:", 1)[1].split(":", 1)[0]


def queue(job: str) -> str:
    return _job(job, "queue")


def specs(job: str) -> str:
    return _job(job, "specs")


def expiry(job: str) -> str:
    return _job(job, "expiry")


def owners(job: str) -> str:
    return _job(job, "owners")


def attempts(job: str) -> str:
    return _job(job, "attempts")


def notify(job: str) -> str:
    return _job(job, "notify")


# A job's fixed keys, in the order the Functions that create and delete a job take them
# (JOB_KEYS in wordcount.lua; a test checks that the two agree).
JOB_KEYS = ("meta", "tasks", "specs", "counts", "done", "dead", "leases", "merges", "queue",
            "expiry", "owners", "attempts", "notify", "shuffle", "history")


def job_keys(job: str) -> list[str]:
    """Every fixed key of the job (JOB_KEYS), then active, registry and deleted."""
    return [_job(job, name) for name in JOB_KEYS] + [active(), registry(), deleted()]


def job_pattern(job: str) -> str:
    """SCAN pattern matching every key of a job (for deleting it)."""
    return _job(job, "*").replace("{", "\\{").replace("}", "\\}")
