"""Celery-style tasks, written as a Celery project writes them: ``@shared_task`` (no app at
import), a ``Task`` base class with options as class attributes and hooks, built-in exceptions.

Imported by the tests and by ``celery_worker.py``, the module their worker processes load
(``sqlqueue worker -A celery_worker``). Each task takes a ``log`` keyword argument: the file
where the hooks append one JSON line per call, for the test to read.
"""

from __future__ import annotations

import json
from typing import Any

from sqlqueue import Ignore, Reject, Task, shared_task


def note(log: str, **entry: Any) -> None:
    with open(log, "a") as file:
        file.write(json.dumps(entry) + "\n")


class Recorded(Task):
    """Logs every hook call; retries IOError (OSError) twice at once, as class attributes."""

    max_retries = 2
    default_retry_delay = 0
    autoretry_for = (IOError,)

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        note(kwargs["log"], hook="before_start", id=task_id)

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        shown = retval if isinstance(retval, int | str) else type(retval).__name__
        note(kwargs["log"], hook="on_success", id=task_id, retval=shown)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        note(
            kwargs["log"],
            hook="on_failure",
            id=task_id,
            exc=type(exc).__name__,
            einfo_type=einfo.type.__name__,
            einfo_is_exc=einfo.exception is exc,
            traceback_names_it=type(exc).__name__ in einfo.traceback,
        )

    def on_retry(
        self, exc: BaseException | None, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        note(kwargs["log"], hook="on_retry", id=task_id, exc=type(exc).__name__, args=list(args))

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        note(kwargs["log"], hook="after_return", id=task_id, status=status)


@shared_task(base=Recorded, bind=True)
def flaky(self: Any, fail_times: int, *, log: str) -> int:
    """Raises IOError (an OSError) on its first ``fail_times`` runs; autoretried."""
    if self.request.retries < fail_times:
        raise OSError(f"disk busy, run {self.request.retries}")
    return self.request.retries


@shared_task(base=Recorded, dont_autoretry_for=(FileNotFoundError,))
def missing_file(*, log: str) -> None:
    """FileNotFoundError is an OSError, but dont_autoretry_for keeps it from retrying."""
    raise FileNotFoundError("no such file: /nope")


@shared_task(base=Recorded, ignore_result=True)
def big_report(*, log: str) -> object:
    """Returns what JSON cannot hold: with ignore_result it is never stored, nor encoded."""
    return object()


@shared_task(base=Recorded, bind=True, autoretry_for=(Exception,))
def rejects(self: Any, requeue: bool, *, log: str) -> str:
    """Rejects its job; with requeue, only on its first take."""
    if not requeue or self.request.attempts == 1:
        raise Reject("bad payload", requeue=requeue)
    return "second take"


@shared_task(base=Recorded)
def ignores(*, log: str) -> None:
    raise Ignore()


@shared_task(base=Recorded, bind=True)
def retry_with_new_args(self: Any, page: int, *, log: str) -> int:
    """Retries once, asking for the next page."""
    if self.request.retries == 0:
        raise self.retry(args=(page + 1,), countdown=0)
    return page


@shared_task(base=Recorded, bind=True)
def retry_without_throw(self: Any, *, log: str) -> str:
    """Asks for a retry without raising, then returns: the job is retried all the same."""
    if self.request.retries == 0:
        self.retry(countdown=0, throw=False)
        return "first run"
    return "second run"


@shared_task(base=Recorded, bind=True, max_retries=1)
def gives_up(self: Any, *, log: str) -> None:
    """Retries on KeyError until its max_retries, then fails with the KeyError itself."""
    try:
        {}["missing"]
    except KeyError as exc:
        raise self.retry(exc=exc, countdown=0) from None


class SuccessHookFails(Recorded):
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        super().on_success(retval, task_id, args, kwargs)
        raise ValueError("could not notify")


@shared_task(base=SuccessHookFails)
def notifies(*, log: str) -> str:
    return "done"
