from __future__ import annotations

from django.core.management import call_command
from django.db import connection


def create_tables() -> None:
    """Tables (auth, sessions and the test model) with one note, before the app serves (so
    none of it is a request's query)."""
    from tests.django_project.models import Note

    if Note._meta.db_table in connection.introspection.table_names():
        return
    call_command("migrate", verbosity=0, run_syncdb=True)
    Note.objects.create(text="hello")
    connection.close()
