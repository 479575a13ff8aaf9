"""Every Redis key name, in one place. Nothing else formats a key.

A job's keys share the hash tag ``{job}`` so a job lives in one slot (cluster/RedisRaft
friendly), and Lua receives all of them in KEYS.

    wc:jobs                      set    names of active (unfinished) jobs
    wc:{J}:tasks                     stream tasks, id 0-<seq>, fields path/start/end/epoch;
                                            group "workers"
    wc:{J}:meta                      hash   plan, epoch, totals, progress counters, state
    wc:{J}:counts                    zset   word -> count (the result)
    wc:{J}:done                      hash   task id -> its word total (settled: applied)
    wc:{J}:dead                      hash   task id -> reason (settled: dead letters)
    wc:{J}:leases                    zset   task id -> start ms of its current attempt
    wc:{J}:merges                    set    accepted stage pieces not yet applied (key names)
    wc:{J}:stage:<id>:<attempt>:<k>  list   piece k of a big task's word, count pairs
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


def done(job: str) -> str:
    return _job(job, "done")


def leases(job: str) -> str:
    return _job(job, "leases")


def merges(job: str) -> str:
    return _job(job, "merges")


def stage(job: str, task_id: str, attempt: str, piece: int) -> str:
    return _job(job, f"stage:{task_id}:{attempt}:{piece}")


def job_pattern(job: str) -> str:
    """SCAN pattern matching every key of a job (for deleting it)."""
    return _job(job, "*").replace("{", "\\{").replace("}", "\\}")
