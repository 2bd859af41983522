"""A patient's child rows in the patient's own query (``PatientQuerySet.with_children``).

A full read needs the names, identifiers, addresses, contacts and links of each
patient. ``prefetch_related`` fetches them with one query per table: six round trips,
and six ORM compilations, which cost more than PostgreSQL's work on this machine
(~5 ms of a ~6 ms read). Here each child table is a correlated subquery of the
patient's row that returns its rows as one ``jsonb`` array, in the order
``prefetch_related`` used; ``ChildrenIterable`` turns the arrays back into model
instances and stores them where ``prefetch_related`` would have (the related
managers' prefetch cache), so ``patient.names.all()`` and every serializer and mapper
see the same objects as before. A further ``filter()`` on such a manager queries the
database with the relation's filter, as it does after ``prefetch_related``.
"""

from __future__ import annotations

from uuid import UUID

from django.db import connections, models, router
from django.db.models.query import ModelIterable

# related name -> (child table, ORDER BY inside the aggregate). The orders are those
# of the former Prefetch querysets.
CHILDREN: dict[str, tuple[str, str]] = {
    "names": ("patients_name", 'c."primary" DESC, c.id'),
    "identifiers": ("patients_identifier", "c.id"),
    "addresses": ("patients_address", 'c."primary" DESC, c.id'),
    "contacts": ("patients_contact", "c.system, c.rank, c.id"),
}
PREFIX = "_children_"


class ChildRows(models.Func):
    """``jsonb`` array of the outer patient's rows of one child table (alias ``c``):
    ``row`` per child (default: the whole row), optional ``join`` and ``where``."""

    output_field = models.JSONField()

    def __init__(self, table: str, order: str, *, row: str = "to_jsonb(c)", join: str = "", where: str = ""):
        super().__init__(models.F("pk"))
        self.template = (
            f"(SELECT coalesce(jsonb_agg({row} ORDER BY {order}), '[]'::jsonb) FROM {table} c {join}"
            f" WHERE c.patient_id = %(expressions)s {where})"
        )


class _LinkRows(ChildRows):
    """The links, each with its other patient's row (``select_related("other")``); none
    for a soft-deleted patient (``Link.objects`` hides them, and the former prefetch used it)."""

    def __init__(self) -> None:
        super().__init__(
            "patients_link",
            "c.id",
            row="to_jsonb(c) || jsonb_build_object('other', to_jsonb(o))",
            join="JOIN patients_patient o ON o.id = c.other_id",
        )

    def as_sql(self, compiler, connection, **extra):
        sql, params = super().as_sql(compiler, connection, **extra)
        deleted, deleted_params = compiler.compile(models.F("deleted_at").resolve_expression(compiler.query))
        return f"CASE WHEN {deleted} IS NULL THEN {sql} ELSE '[]'::jsonb END", (*deleted_params, *params)


def annotations() -> dict[str, models.Func]:
    found: dict[str, models.Func] = {PREFIX + name: ChildRows(*spec) for name, spec in CHILDREN.items()}
    found[PREFIX + "links"] = _LinkRows()
    return found


class _Builder:
    """Model instances from ``to_jsonb`` rows, converted as the database adapter would."""

    def __init__(self, model) -> None:
        self.model = model
        self.fields = [(f.column, _converter(f)) for f in model._meta.concrete_fields]

    def build(self, row: dict, db: str):
        values = [convert(row[column]) if convert else row[column] for column, convert in self.fields]
        return self.model.from_db(db, None, values)


def _converter(field):
    # JSON brings ints, booleans, strings, lists and nulls as Python wants them;
    # dates, datetimes and uuids come as strings.
    if isinstance(field, (models.DateField, models.UUIDField)):  # DateTimeField is a DateField
        return lambda value, to_python=field.to_python: None if value is None else to_python(value)
    return None


_builders: dict[object, _Builder] = {}


def _builder(model) -> _Builder:
    if model not in _builders:
        _builders[model] = _Builder(model)
    return _builders[model]


class ChildrenIterable(ModelIterable):
    """Patients whose child rows came along as ``jsonb`` annotations (see module doc)."""

    def __iter__(self):
        db = self.queryset.db
        for patient in super().__iter__():
            _attach(patient, db)
            yield patient


def _attach(patient, db: str) -> None:
    model = type(patient)
    cache = patient.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, relation in _relations(model):
        rows = patient.__dict__.pop(PREFIX + name)
        child_model = relation.related_model
        builder = _builder(child_model)
        objects = [builder.build(row, db) for row in rows]
        for child in objects:  # as prefetch_related does: child.patient without a query
            relation.field.set_cached_value(child, patient)
        if name == "links":
            other = child_model._meta.get_field("other")
            for link, row in zip(objects, rows, strict=True):
                other.set_cached_value(link, _builder(model).build(row["other"], db))
        cache[name] = _prefetched(relation, patient, objects, db)


_relation_cache: dict[object, list] = {}


def _relations(model) -> list:
    if model not in _relation_cache:
        _relation_cache[model] = [(name, model._meta.get_field(name)) for name in (*CHILDREN, "links")]
    return _relation_cache[model]


def _prefetched(relation, patient, objects: list, db: str):
    """The queryset ``prefetch_related`` leaves in the related manager's cache: holding
    ``objects``, and filtered on the patient should anything build on it (``filter()``,
    ``update()``). ``RelatedManager._apply_rel_filters`` builds the same from the base
    manager's queryset with two clones of its query; at five relations per patient that
    was a tenth of a full read, so the relation's filter is deferred here (Django's own
    ``_deferred_filter``, applied when the query is first used) and nothing is cloned."""
    child_model = relation.related_model
    field = relation.field
    queryset_class = child_model._base_manager._queryset_class
    queryset = queryset_class(model=child_model, using=db, hints={"instance": patient})
    queryset._deferred_filter = (False, (), {field.name: patient})
    queryset._known_related_objects = {field: {patient.pk: patient}}
    queryset._result_cache = objects
    queryset._prefetch_done = True
    return queryset


# --- One patient by its key, without compiling the query every time --------------------


class _OneStatement:
    """``Patient.all_objects.with_children().filter(<field>=value)`` compiled by the ORM once,
    with the layout of its columns and their converters, then run as written.

    Compiling that query (five correlated subqueries, a join, the annotations) cost
    ~2 ms of CPU on every read, more than PostgreSQL's work for it; a full read is the
    commonest request an MPI serves.
    """

    SENTINELS = {"uuid": UUID(int=0), "pk": 0}

    def __init__(self, field: str, alias: str) -> None:
        from patients.models import Patient

        sentinel = self.SENTINELS[field]
        queryset = Patient.all_objects.using(alias).with_children().filter(**{field: sentinel})
        compiler = queryset.query.get_compiler(using=alias)
        self.sql, params = compiler.as_sql()
        if tuple(params) != (sentinel,) or not self.sql.endswith(" = %s"):
            # The statement must end on the key's condition and take nothing else.
            raise RuntimeError(f"Unexpected one-patient statement: {self.sql[-80:]!r} {params!r}")
        self.many_sql = self.sql[: -len(" = %s")] + " = ANY(%s)"
        klass_info = compiler.klass_info
        patient_columns = klass_info["select_fields"]
        self.patient_slice = slice(patient_columns[0], patient_columns[-1] + 1)
        self.patient_fields = [compiler.select[i][0].target.attname for i in patient_columns]
        (related,) = klass_info["related_klass_infos"]  # select_related("managing_organization")
        org_columns = related["select_fields"]
        self.organization_slice = slice(org_columns[0], org_columns[-1] + 1)
        self.organization_fields = [compiler.select[i][0].target.attname for i in org_columns]
        self.organization_field = related["field"]
        self.annotations = dict(compiler.annotation_col_map)
        self.converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
        self.alias = alias

    def fetch(self, value):
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [value])
            row = cursor.fetchone()
        return None if row is None else self._patient(row, connection)

    def fetch_many(self, values: list) -> list:
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            cursor.execute(self.many_sql, [values])
            return [self._patient(row, connection) for row in cursor.fetchall()]

    def _patient(self, row, connection):
        from patients.models import Organization, Patient

        row = list(row)
        for position, (converters, expression) in self.converters.items():
            for convert in converters:
                row[position] = convert(row[position], expression, connection)
        patient = Patient.from_db(self.alias, self.patient_fields, row[self.patient_slice])
        organization = row[self.organization_slice]
        self.organization_field.set_cached_value(
            patient,
            Organization.from_db(self.alias, self.organization_fields, organization)
            if organization[0] is not None
            else None,
        )
        for name, position in self.annotations.items():
            patient.__dict__[name] = row[position]
        _attach(patient, self.alias)
        return patient


_one_statements: dict[tuple[str, str], _OneStatement] = {}


def _statement(field: str) -> _OneStatement:
    from patients.models import Patient

    alias = router.db_for_read(Patient)
    key = (field, alias)
    if key not in _one_statements:
        _one_statements[key] = _OneStatement(field, alias)
    return _one_statements[key]


def one_with_children(*, uuid: UUID | str | None = None, pk: int | None = None):
    """The patient with this ``uuid`` (or ``pk``), deleted or not, with its children as
    ``Patient.all_objects.with_children()`` gives them; None when there is none."""
    if uuid is not None:
        return _statement("uuid").fetch(uuid if isinstance(uuid, UUID) else UUID(str(uuid)))
    if pk is not None:
        return _statement("pk").fetch(int(pk))
    raise TypeError("one_with_children() needs a uuid or a pk")


def many_with_children(pks) -> dict:
    """``{pk: patient}`` of these patients, deleted or not, as ``one_with_children`` gives
    each, in one query (a missing pk is left out)."""
    pks = [int(pk) for pk in pks]
    return {p.pk: p for p in _statement("pk").fetch_many(pks)} if pks else {}
