"""Every Redis key name, in one place. Nothing else formats a key.

A job's keys share the hash tag ``{job}`` so a job lives in one slot (cluster/RedisRaft
friendly), and Lua receives all of them in KEYS.

    wc:jobs                      set    names of active (unfinished) jobs
    wc:{J}:tasks                 stream tasks, id 0-<seq>, fields path/start/end; group "workers"
    wc:{J}:meta                  hash   plan, totals, progress counters, state
    wc:{J}:counts                zset   word -> count (the result)
    wc:{J}:dead                  hash   task id -> reason (dead letters)
    wc:{J}:leases                hash   task id -> "consumer|claimed_ms" (current attempt)
    wc:{J}:merges                set    staged task ids accepted but not fully applied
    wc:{J}:stage:<id>:<attempt>  hash   a big task's word -> count, staged by one attempt
    wc:{J}:apply:<id>            hash   an accepted big task's word -> count, being merged
"""

from __future__ import annotations

PREFIX = "wc"
GROUP = "workers"
LIBRARY = "wordcount"


def jobs() -> str:
    return f"{PREFIX}:jobs"


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


def leases(job: str) -> str:
    return _job(job, "leases")


def merges(job: str) -> str:
    return _job(job, "merges")


def stage(job: str, task_id: str, attempt: str) -> str:
    return _job(job, f"stage:{task_id}:{attempt}")


def apply(job: str, task_id: str) -> str:
    return _job(job, f"apply:{task_id}")


def job_pattern(job: str) -> str:
    """SCAN pattern matching every key of a job (for deleting it)."""
    return _job(job, "*").replace("{", "\\{").replace("}", "\\}")
