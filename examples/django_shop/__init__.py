"""A Django project shaped as teams build them, on PostgreSQL: see examples/django_shop/README."""
