from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse

from examples.django_shop.orders.models import Order


@login_required
def mine(request: HttpRequest) -> JsonResponse:
    orders = Order.objects.filter(user=request.user).select_related("book")
    return JsonResponse({"orders": [order.book.title for order in orders]})
