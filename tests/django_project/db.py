from __future__ import annotations

from django.db import connection


def create_tables() -> None:
    """The test table, with one row; before the app serves (so not counted as a request's)."""
    from tests.django_project.models import Note

    if Note._meta.db_table in connection.introspection.table_names():
        return
    with connection.schema_editor() as editor:
        editor.create_model(Note)
    Note.objects.create(text="hello")
    connection.close()
