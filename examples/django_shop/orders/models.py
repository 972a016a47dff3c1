from __future__ import annotations

from django.db import models


class Order(models.Model):
    email = models.EmailField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    receipt_sent_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"order {self.pk} for {self.email}"
