"""New rows and their history rows in one INSERT statement.

``simple_history.utils.bulk_create_with_history`` makes two statements a table (the
rows, then their history rows built from the returned keys), and a registration writes
five tables: ten statements, each compiled by Django and sent on its own round trip, and
each asking simple-history for a history manager (it builds a new manager class on
every access). Here each table's ``INSERT ... RETURNING`` is a data-modifying CTE whose
rows feed its history table's ``INSERT ... SELECT``, all in one statement; a child row's
foreign key can be the key of a row inserted by the same statement (a patient's names
take the new patient's id).

The rows are those ``Model.save()`` / ``bulk_create_with_history`` write: Django's own
INSERT compiler renders each table's rows (defaults, ``auto_now`` fields, adapters), and
each history row carries every tracked field plus ``history_date``, ``history_user``,
``history_change_reason`` and ``history_type = "+"`` (tests/patients/test_inserts.py
compares them). Foreign key checks are deferred to the commit as Django declares them,
and a unique index violation aborts the whole statement, as it would the first of the
separate ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import connection
from django.db.models import AutoField, Model
from django.db.models.expressions import RawSQL
from django.db.models.sql import InsertQuery
from django.utils import timezone


@cache
def history_model(model: type[Model]) -> type[Model]:
    """``model.history.model``, once: each ``model.history`` builds a manager class."""
    return model.history.model


@dataclass
class _Table:
    name: str  # its CTE's name
    model: type[Model]
    objs: list[Model]
    parent: Model | None = None
    fk: str = ""  # the attname of the rows' foreign key to ``parent``


class InsertWithHistory:
    """Collect unsaved rows with ``add``, then write them and their history with ``execute``.

    >>> statement = InsertWithHistory(user=actor, reason="Registered")
    >>> statement.add([patient])
    >>> statement.add(names, parent=patient)  # their patient_id: the new patient's id
    >>> statement.execute()  # sets every row's primary key
    """

    def __init__(self, *, user=None, reason: str = "", when=None) -> None:
        self.user = user
        self.reason = reason
        self.when = when
        self._tables: list[_Table] = []

    def add(self, objs: list[Model], *, parent: Model | None = None) -> None:
        """Rows of one model, not saved yet. ``parent``: a row added earlier, alone in its
        ``add``, that these rows point to (their foreign key to it takes its new key)."""
        if not objs:
            return
        model = type(objs[0])
        table = _Table(f"t{len(self._tables)}", model, list(objs), parent)
        if parent is not None:
            (source,) = [t for t in self._tables if len(t.objs) == 1 and t.objs[0] is parent]
            (fk,) = [
                f for f in model._meta.concrete_fields if f.many_to_one and f.related_model is type(parent)
            ]
            pk = connection.ops.quote_name(type(parent)._meta.pk.column)
            table.fk = fk.attname
            for obj in objs:
                setattr(obj, fk.attname, RawSQL(f"(SELECT {pk} FROM {source.name})", ()))
        self._tables.append(table)

    def execute(self) -> None:
        if not self._tables:
            return
        qn = connection.ops.quote_name
        when = self.when or timezone.now()
        with_history = getattr(settings, "SIMPLE_HISTORY_ENABLED", True)
        ctes, params, keys = [], [], []
        for table in self._tables:
            opts = table.model._meta
            fields = [f for f in opts.concrete_fields if not f.generated]
            query = InsertQuery(table.model)
            query.insert_values([f for f in fields if not isinstance(f, AutoField)], table.objs)
            compiler = query.get_compiler(connection=connection)
            compiler.returning_fields = fields
            ((sql, values),) = compiler.as_sql()
            ctes.append(f"{table.name} AS ({sql})")
            params.extend(values)
            # The keys in the order of the VALUES rows, as bulk_create takes them from
            # INSERT ... RETURNING (a CTE is read back in the order it was written).
            keys.append(f"(SELECT array_agg({qn(opts.pk.column)}) FROM {table.name})")
            if with_history:
                sql, values = self._history(table, when)
                ctes.append(f"{table.name}h AS ({sql})")
                params.extend(values)
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(ctes)} SELECT {', '.join(keys)}", params)
            ids = cursor.fetchone()
        for table, table_ids in zip(self._tables, ids, strict=True):
            for obj, pk in zip(table.objs, table_ids, strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = connection.alias
                if table.parent is not None:
                    setattr(obj, table.fk, table.parent.pk)

    def _history(self, table: _Table, when) -> tuple[str, list]:
        """INSERT INTO <history> (...) SELECT <tracked columns>, <who, when, why, "+"> FROM <the CTE>."""
        qn = connection.ops.quote_name
        history = history_model(table.model)
        meta = history._meta
        tracked = history.tracked_fields
        columns = [meta.get_field(f.attname).column for f in tracked]
        columns += [meta.get_field("history_user").column]
        columns += ["history_date", "history_change_reason", "history_type"]
        user = self.user if self.user is not None else history.get_default_history_user(table.objs[0])
        sql = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
            f"SELECT {', '.join(qn(f.column) for f in tracked)}, %s, %s, %s, '+' FROM {table.name}"
        )
        return sql, [getattr(user, "pk", None), when, self.reason]


def create_with_history(objs: list[Model], *, user=None, reason: str = "") -> list[Model]:
    """``bulk_create_with_history`` in one statement: unsaved rows of one model and their history."""
    statement = InsertWithHistory(user=user, reason=reason)
    statement.add(objs)
    statement.execute()
    return objs
