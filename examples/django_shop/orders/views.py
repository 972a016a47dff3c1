from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orders.models import Order
from orders.tasks import send_receipt


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    """Create an order and its receipt job in one transaction: both or neither."""
    with transaction.atomic():
        order = Order.objects.create(
            email=request.POST["email"], total=Decimal(request.POST["total"])
        )
        receipt = send_receipt.delay(order.pk)
        if request.POST.get("card") == "declined":
            transaction.set_rollback(True)
            return JsonResponse({"error": "card declined"}, status=402)
    return JsonResponse({"order": order.pk, "receipt_job": receipt.id}, status=201)
