"""Found by `manage.py sqlqueue_worker`, as Celery's autodiscovery finds tasks.py."""

from __future__ import annotations

from django.utils import timezone

from orders.models import Order
from sqlqueue.contrib.django import app


@app.task
def send_receipt(order_id: int) -> str:
    order = Order.objects.get(pk=order_id)
    # A real shop would send an email here.
    order.receipt_sent_at = timezone.now()
    order.save(update_fields=["receipt_sent_at"])
    return f"receipt for order {order.pk} sent to {order.email}"
