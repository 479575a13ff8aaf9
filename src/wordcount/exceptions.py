"""Every exception of our own, and the exit status each one maps to (flat, as in rq)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected error, or a job that finished incomplete
EXIT_USAGE = 2  # bad arguments, no input matched
EXIT_INPUT_ERRORS = 3  # some inputs could not be read / tasks were dead-lettered; the rest counted
EXIT_REDIS = 4  # Redis unreachable, wrong password, protocol mismatch
EXIT_INCONSISTENT = 5  # the job finished but its result failed the end-to-end self-check
EXIT_TIMEOUT = 6  # --timeout passed before the command finished (a submitted job keeps running)
EXIT_NOT_FINISHED = 7  # `result JOB`: the job is still running (`wait JOB` waits for it)
EXIT_CANCELLED = 8  # the job was cancelled (`wordcount cancel`)
EXIT_DELETED = 9  # the job was deleted (`wordcount delete`) while this command waited for it
EXIT_CRASHED = 70  # a worker's injected crash (wordcount.lab.faults): a WorkerPool restarts it
EXIT_INTERRUPTED = 130


class WordcountError(Exception):
    exit_code = EXIT_FAILURE


class UsageError(WordcountError):
    exit_code = EXIT_USAGE


class NoInputError(UsageError):
    """No input argument matched anything."""


class RedisUnavailableError(WordcountError):
    """Redis could not be reached (after retries), or refused our credentials."""

    exit_code = EXIT_REDIS


class PermissionRefusedError(RedisUnavailableError):
    """Redis refused a command to our ACL user (NOPERM)."""


class ProtocolMismatchError(WordcountError):
    """Redis holds a wordcount Function library of another protocol version than ours."""

    exit_code = EXIT_REDIS


class JobInconsistentError(WordcountError):
    """A finished job's result broke an invariant of the commit protocol (a task lost, doubled
    or partly applied): the result must not be trusted."""

    exit_code = EXIT_INCONSISTENT


class PhaseError(WordcountError):
    """A commit that does not fit its shuffle job's phase (WCPHASE): a plain commit of a map in
    the map phase (its words would miss the reduces), or a map commit of the wrong number of
    partition pieces."""


class PieceLostError(JobInconsistentError):
    """An accepted staged piece is missing from Redis (WCLOST): never expected, since no key
    of a job has a TTL; the job's table cannot be completed."""


class JobConflictError(WordcountError):
    """A job of that name exists in Redis with a different plan."""

    exit_code = EXIT_USAGE


class NoSuchJobError(UsageError):
    """No job of that name in Redis (never submitted, deleted, or expired)."""


class JobRunningError(UsageError):
    """``delete`` of a running job without ``--force``."""


class InputChangedError(WordcountError):
    """An input file changed while the job ran (it is not what the plan recorded): its tasks
    were set aside, and no result is printed (it would mix two versions of the file)."""

    exit_code = EXIT_INPUT_ERRORS


class JobNotFinishedError(WordcountError):
    """``result JOB`` of a job that is still running."""

    exit_code = EXIT_NOT_FINISHED


class JobCancelledError(WordcountError):
    """The job was cancelled: it takes no commit any more; its counts are partial."""

    exit_code = EXIT_CANCELLED


class JobDeletedError(WordcountError):
    """An operator deleted the job (``wordcount delete``) while this command followed it: a
    delete stays a delete, the job is not submitted again."""

    exit_code = EXIT_DELETED


class DeadlineExceededError(WordcountError):
    """The command's ``--timeout`` passed: one deadline for everything it waits for (Redis
    reachable again, the job done, its result read)."""

    exit_code = EXIT_TIMEOUT


class JobLostError(WordcountError):
    """The job disappeared from Redis (restart from an older snapshot, or no snapshot)."""


class ShutdownRequested(BaseException):
    """Raised in a worker on SIGTERM/SIGINT/SIGHUP: finish nothing, exit cleanly (BaseException so a
    broad ``except Exception`` never swallows it)."""


class SignalReceived(BaseException):
    """SIGTERM, SIGHUP or SIGINT asked a command to stop. Raised where the main thread is, as
    KeyboardInterrupt is, so every ``with``/``finally`` on the way out runs (``run`` stops its
    workers and private Redis); the exit status is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
