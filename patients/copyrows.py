"""Multi-row inserts with COPY, for the bulk importer: the rows and history rows that
``simple_history.utils.bulk_create_with_history`` writes, for a fraction of the CPU
(and ``update_with_history``, the same for ``bulk_update_with_history``: batch
detection's re-scored candidates).

Why not ``bulk_create_with_history`` itself: profiling an import of 3,000 patients
(docs/import.md) put 60% of its CPU time in Django's INSERT compiler and psycopg's
client-side parameter binding for the patient, child and history rows — per value
work repeated for ~50 values per patient. COPY streams the same values with psycopg's
C adapters. The rows are the same: primary keys come from the tables' own sequences,
``auto_now``/``auto_now_add`` fields are filled by the fields themselves, and each
history row carries every tracked field plus ``history_date``, ``history_user``,
``history_change_reason`` and ``history_type = "+"``, as simple-history's
``bulk_history_create`` makes them (tests/imports/test_import_writes.py compares
them with the rows ``register_patient`` writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection
from django.db.models import DateField, JSONField, Model
from django.utils import timezone


def allocate_ids(model: type[Model], count: int) -> list[int]:
    """``count`` fresh primary keys from the table's own sequence (as INSERT would take)."""
    if count == 0:
        return []
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """COPY ``rows`` (tuples of Python values, adapted by psycopg) into ``table``."""
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    sql = f"COPY {connection.ops.quote_name(table)} ({names}) FROM STDIN"
    # The raw psycopg cursor (COPY is not in the DB-API): errors are turned into
    # Django's own (IntegrityError, ...) as for any other query.
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _auto_fields(model: type[Model]) -> list:
    return [
        f for f in model._meta.concrete_fields if isinstance(f, DateField) and (f.auto_now or f.auto_now_add)
    ]


def insert_with_history(
    objs: list[Model], model: type[Model], *, user=None, reason: str = "", when: datetime | None = None
) -> list[Model]:
    """Insert unsaved ``objs`` and one "+" history row each; sets their primary keys."""
    if not objs:
        return objs
    for obj, pk in zip(objs, allocate_ids(model, len(objs)), strict=True):
        obj.pk = pk
        for f in _auto_fields(model):
            f.pre_save(obj, add=True)
        obj._state.adding = False
    fields = model._meta.concrete_fields
    _copy_with_history(
        model, [{f.attname: getattr(obj, f.attname) for f in fields} for obj in objs], user, reason, when
    )
    return objs


def insert_values_with_history(
    rows: list[dict], model: type[Model], *, user=None, reason: str = "", when: datetime | None = None
) -> list[int]:
    """As ``insert_with_history`` for rows given as ``{attname: value}`` (the others take
    their field's default), without building a model instance per row (~40 µs each,
    a tenth of an import's CPU); returns the new primary keys in order."""
    if not rows:
        return []
    if _auto_fields(model):
        raise ValueError(f"{model.__name__} has auto_now fields: use insert_with_history")
    pk = model._meta.pk
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    ids = allocate_ids(model, len(rows))
    values = []
    for row_id, row in zip(ids, rows, strict=True):
        value = {pk.attname: row_id}
        value.update((f.attname, row[f.attname] if f.attname in row else f.get_default()) for f in fields)
        values.append(value)
    _copy_with_history(model, values, user=user, reason=reason, when=when)
    return ids


def _copy_with_history(
    model: type[Model], values: list[dict], user, reason: str, when: datetime | None
) -> None:
    """COPY complete rows (``{attname: value}`` of every concrete field) and their history."""
    fields = model._meta.concrete_fields
    # JSON values need their adapter (psycopg copies no bare dict); nothing else does.
    for f in fields:
        if isinstance(f, JSONField):
            for v in values:
                v[f.attname] = f.get_db_prep_save(v[f.attname], connection)
    copy_rows(
        model._meta.db_table, [f.column for f in fields], ([v[f.attname] for f in fields] for v in values)
    )
    _copy_history(model, values, user=user, reason=reason, when=when, history_type="+")


def _copy_history(
    model: type[Model], values: list[dict], *, user, reason: str, when: datetime | None, history_type: str
) -> None:
    """One history row per row of ``values`` (``{attname: value}``, JSON adapted), as
    simple-history's ``bulk_history_create`` makes them."""
    history = model.history.model
    tracked = [f.attname for f in history.tracked_fields]
    when = when or timezone.now()
    user_id = user.pk if user is not None else None
    columns = [history._meta.get_field(name).column for name in tracked]
    columns += ["history_date", "history_user_id", "history_change_reason", "history_type"]
    copy_rows(
        history._meta.db_table,
        columns,
        ([*(v[name] for name in tracked), when, user_id, reason, history_type] for v in values),
    )


def update_with_history(
    objs: Sequence[Model],
    model: type[Model],
    fields: Sequence[str],
    *,
    user=None,
    reason: str = "",
    when: datetime | None = None,
) -> None:
    """Write ``fields`` of saved ``objs`` and one "~" history row each: the rows
    ``simple_history.utils.bulk_update_with_history`` writes, for a fraction of the CPU.

    Django's ``bulk_update`` sends each field as a ``CASE WHEN id = ... THEN ...`` over
    the whole batch, compiled by the ORM value by value: re-scoring the 88,000 open
    candidates of a million-patient registry took ~200 s of CPU that way. Here the new
    values are COPYed into a temporary table (arrays and JSON included, which
    ``unnest`` of one array per column cannot carry) and applied by one UPDATE; the
    history rows are COPYed too.
    """
    if not objs:
        return
    meta, ops = model._meta, connection.ops
    values = [
        {
            f.attname: f.get_db_prep_save(getattr(obj, f.attname), connection)
            if isinstance(f, JSONField)
            else getattr(obj, f.attname)
            for f in meta.concrete_fields
        }
        for obj in objs
    ]
    targets = [meta.pk, *(meta.get_field(name) for name in fields)]
    columns = [ops.quote_name(f.column) for f in targets]
    table, staging = ops.quote_name(meta.db_table), f"_update_{meta.db_table}"
    with connection.cursor() as cursor:
        # A copy of the columns without their constraints, dropped below (not ON COMMIT:
        # inside an outer transaction a second call would find it still there).
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} AS SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
        )
        copy_rows(staging, [f.column for f in targets], ([v[f.attname] for f in targets] for v in values))
        assignments = ", ".join(f"{c} = s.{c}" for c in columns[1:])
        cursor.execute(
            f"UPDATE {table} t SET {assignments} FROM {staging} s WHERE t.{columns[0]} = s.{columns[0]}"
        )
        cursor.execute(f"DROP TABLE {staging}")
    _copy_history(model, values, user=user, reason=reason, when=when, history_type="~")
