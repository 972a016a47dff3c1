"""Billing: a base class with Celery's hooks, automatic retries with backoff, Reject,
progress, and a task that keeps no result."""

# was: from celery import Task, shared_task; from celery.exceptions import Reject
from sqlqueue import Reject, Task, shared_task


class AuditedTask(Task):
    """Every billing task says how it ended."""

    def on_success(self, retval, task_id, args, kwargs):
        print(f"[audit] {self.name}{tuple(args)} succeeded: {retval!r}", flush=True)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        print(f"[audit] {self.name}{tuple(args)} failed: {exc!r}", flush=True)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        print(f"[audit] {self.name}{tuple(args)} will retry: {exc!r}", flush=True)


@shared_task(
    base=AuditedTask,
    bind=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=1,
    retry_jitter=False,
    retry_kwargs={"max_retries": 3},
)
def charge(self, order_id, cents):
    """Charge an order. The gateway times out on the first try; autoretry tries again."""
    if cents <= 0:
        raise Reject(f"order {order_id} has nothing to charge", requeue=False)
    if self.request.retries == 0:
        raise ConnectionError("payment gateway timed out")
    return {"order": order_id, "charged": cents}


@shared_task(bind=True)
def close_month(self, order_ids):
    """A long job that says how far it got, for a progress bar."""
    for done, _order_id in enumerate(order_ids, start=1):
        self.update_state(state="PROGRESS", meta={"current": done, "total": len(order_ids)})
    return {"closed": len(order_ids)}


@shared_task(ignore_result=True)
def log_event(text):
    """Fire and forget: it runs, and no result is kept."""
    print(f"[event] {text}", flush=True)
