"""Found by `manage.py sqlqueue_worker`, as Celery's autodiscovery finds tasks.py."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from orders.models import Order
from sqlqueue.contrib.django import app

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task


@app.task
def send_receipt(order_id: int) -> str:
    order = Order.objects.get(pk=order_id)
    # A real shop would send an email here.
    order.receipt_sent_at = timezone.now()
    order.save(update_fields=["receipt_sent_at"])
    return f"receipt for order {order.pk} sent to {order.email}"


@task(priority=10, takes_context=True)
def notify_warehouse(context: Any, order_id: int) -> dict[str, int]:
    """The same kind of work through Django's own task framework, run by sqlqueue."""
    order = Order.objects.get(pk=order_id)
    return {"order": order.pk, "attempt": context.attempt}
