"""GroupResult: the results of a group's jobs, in the group's order, from any process."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlqueue.exceptions import JobNotFoundError, TimeoutError
from sqlqueue.result import POLL_MAX, AsyncResult

if TYPE_CHECKING:
    from sqlqueue.app import SQLQueue


class GroupResult:
    """The receipts of a group's jobs (a chain in a group counts by its last job), in the
    order the group listed them. Every answer is read from the jobs' rows when asked."""

    __slots__ = ("app", "id", "results")

    def __init__(
        self, id: str, results: Sequence[AsyncResult], app: SQLQueue | None = None
    ) -> None:
        if app is None:
            from sqlqueue.shared import get_current_app  # shared imports tasks, which import this

            app = get_current_app()
        self.id = id
        self.results = list(results)
        self.app = app

    @classmethod
    def restore(cls, id: str, app: SQLQueue | None = None) -> GroupResult:
        """The handle of a group sent earlier, from its id alone (``g.id``), in any process.

        Raises:
            JobNotFoundError: no job of this app's database belongs to a group of that id
                (a wrong id, another database, or its jobs were pruned).
        """
        if app is None:
            from sqlqueue.shared import get_current_app

            app = get_current_app()
        ids = app.store.group_member_ids(id)
        if not ids:
            raise JobNotFoundError(
                f"No group with id {id} in this app's database; check the id and that this "
                "app uses the database the group was sent to (or its jobs were pruned)."
            )
        return cls(id, [AsyncResult(job_id, app) for job_id in ids], app)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(result.id for result in self.results)}]>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    @property
    def children(self) -> list[AsyncResult]:
        """Celery's other name for ``results``."""
        return self.results

    def ready(self) -> bool:
        """Whether every job has finished."""
        return all(result.ready() for result in self.results)

    def successful(self) -> bool:
        """Whether every job has succeeded."""
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        """Whether any job has failed."""
        return any(result.failed() for result in self.results)

    def waiting(self) -> bool:
        """Whether any job has not finished yet."""
        return not self.ready()

    def completed_count(self) -> int:
        """How many of the jobs have succeeded."""
        return sum(result.successful() for result in self.results)

    def get(
        self, timeout: float | None = None, propagate: bool = True, interval: float = POLL_MAX
    ) -> list[Any]:
        """Wait for every job and return their results in the group's order, whatever order
        they finished in; ``timeout`` is for the whole group.

        Raises:
            TimeoutError: a job had not finished within ``timeout`` seconds.
            TaskFailedError, TaskRevokedError: the first job, in the group's order, that
                failed or was revoked (unless ``propagate=False``: its error takes its place).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                values.append(result.get(timeout=left, propagate=propagate, interval=interval))
            except TimeoutError:
                raise TimeoutError(
                    f"Group {self.id}: job {result.id} had not finished within {timeout:g}s "
                    f"({self.completed_count()} of {len(self.results)} succeeded); is a "
                    "worker running for its queue?"
                ) from None
        return values

    join = get
    """Celery's other name for ``get``."""

    def revoke(self, terminate: bool = False, signal: str | int | None = None) -> int:
        """Revoke every job of the group not yet started (with ``terminate``, running ones
        too), and the steps that wait for them; returns how many jobs were revoked."""
        return self.app.store.revoke_jobs([result.id for result in self.results], terminate)
