"""Emails, sent from their own queue (task_routes in celeryconfig.py)."""

from sqlqueue import shared_task  # was: from celery import shared_task


class MailServerBusy(Exception):
    """The mail server asked us to come back later."""


@shared_task(bind=True, max_retries=2, default_retry_delay=0)
def send_receipt(self, address, order_id):
    """The mail server is busy on the first try: retry by hand, as Celery's docs show."""
    try:
        if self.request.retries == 0:
            raise MailServerBusy("421 try again later")
    except MailServerBusy as exc:
        raise self.retry(exc=exc)
    return f"receipt for order {order_id} sent to {address}"
