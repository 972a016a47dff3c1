"""`manage.py place_order EMAIL TOTAL`: what the shop's checkout does, from the shell."""

from __future__ import annotations

from argparse import ArgumentParser
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from orders.models import Order
from orders.tasks import send_receipt


class Command(BaseCommand):
    help = "Place an order; its receipt is sent by a worker after the commit."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("email")
        parser.add_argument("total")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            order = Order.objects.create(email=options["email"], total=Decimal(options["total"]))
            receipt = send_receipt.delay(order.pk)
        self.stdout.write(f"order {order.pk} placed; receipt job {receipt.id}")
