"""The operator's actions the dashboard offers (off unless ``wordcount dashboard --actions``):
cancel a running job, requeue its dead letters, delete a finished job -- what `wordcount
cancel`, `requeue` and `delete` do, through the same Functions.

Each action names the job *and the incarnation* the page showed (its epoch), and the Functions
check it in the call that acts: a job replaced since (``--fresh``, a new plan) or deleted is
refused, never acted on by name alone. A request must carry ``{"confirm": <the job's name>,
"epoch": ...}`` (the page asks first, ``window.confirm``); one without its confirmation changes
nothing. The dashboard deletes only finished jobs (a running one is cancelled first: its client
is waiting for it). Every action, done or refused, goes to the event feed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import jobs
from ..connection import Connection
from ..exceptions import JobCancelledError, JobRunningError, NoSuchJobError

ACTIONS = ("cancel", "requeue", "delete")


@dataclass
class ActionError(Exception):
    """An action refused, with the HTTP status that says why."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def run(conn: Connection, action: str, name: str, epoch: str) -> str:
    """Do ``action`` on the incarnation ``epoch`` of job ``name`` (what ``wordcount cancel``,
    ``requeue`` and ``delete`` do: jobs.py, pinned to that epoch); returns what was done."""
    if action not in ACTIONS:
        raise ActionError(404, f"no action {action!r} (one of {', '.join(ACTIONS)})")
    try:
        p = jobs.require(conn, name)
    except NoSuchJobError:
        raise ActionError(404, f"no job {name} in Redis (deleted, expired, or lost)") from None
    replaced = ActionError(409, f"job {name} is not the one the page showed (epoch {epoch}): "
                                "it was replaced or deleted since; nothing was done")
    try:
        if action == "cancel":
            if not jobs.cancel(conn, name, epoch=epoch):
                raise ActionError(409, f"job {name} is not running ({p.state}): nothing to "
                                       "cancel")
            return f"job {name} cancelled"
        if action == "requeue":
            n = jobs.requeue(conn, name, epoch=epoch)
            if not n:
                raise ActionError(409, f"job {name} has no dead letter to requeue")
            return f"job {name}: {n} dead letter(s) requeued"
        if p.state == "running":
            raise ActionError(409, f"job {name} is running: cancel it first (the dashboard "
                                   "deletes only finished jobs)")
        jobs.delete(conn, name, epoch=epoch)
        return f"job {name} deleted"
    except NoSuchJobError:
        raise replaced from None
    except JobCancelledError:
        raise ActionError(409, f"job {name} was cancelled: submit it again (--fresh) rather "
                               "than requeue") from None
    except JobRunningError:  # requeued or resubmitted meanwhile
        raise ActionError(409, f"job {name} is running again: nothing was deleted") from None
