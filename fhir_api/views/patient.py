"""Patient endpoints: thin views over ``fhir_api.interactions`` (create, read, vread,
update, conditional create/update, delete, instance and type history)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import urlencode

from fhir_api import interactions
from fhir_api.access import patient_ids
from fhir_api.errors import FhirError
from fhir_api.history import Version, history_entry, patient_history
from fhir_api.interactions import CREATE, DELETE, HISTORY, READ, UPDATE, prefer_body
from fhir_api.search import search_bundle
from fhir_api.views.base import FhirView, fhir_base_url, fhir_response
from mpi.access import note_access
from mpi.db import replica_reads
from patients.api.views import change_reason
from patients.data import whole_number
from patients.models import Patient

DEFAULT_COUNT = 20
MAX_COUNT = 100


def _write_context(request) -> dict:
    """What every update takes from the request besides the resource."""
    return {
        "user": request.user,
        "base_url": fhir_base_url(request),
        "reason": change_reason(request),
        "if_match": request.headers.get("If-Match"),
    }


def _written(request, outcome: interactions.Outcome):
    """A create's or update's answer, shaped by ``Prefer: return=...``."""
    return fhir_response(prefer_body(outcome, request.headers.get("Prefer")), outcome.status, outcome.headers)


class PatientTypeView(FhirView):
    """``/fhir/Patient``: POST create (conditional with If-None-Exist), PUT conditional update,
    GET search (delegated to ``fhir_api.search.search_bundle``)."""

    permissions = {"GET": READ, "POST": CREATE, "PUT": UPDATE}

    def get(self, request):
        with replica_reads():
            bundle = search_bundle(
                request.query_params,
                base_url=fhir_base_url(request),
                user=request.user,
                prefer=request.headers.get("Prefer"),
            )
        note_access(request, "search", patient_ids(bundle), query=request.META.get("QUERY_STRING", ""))
        return fhir_response(bundle)

    def post(self, request):
        conditions = sorted(k for k in request.query_params if k not in ("_format", "_pretty"))
        if conditions:
            # Some clients (fhirpy's get_or_create) put a create's condition in the URL;
            # ignoring it would register a duplicate patient every time.
            raise FhirError(
                400,
                "not-supported",
                f"A create takes no search parameters in the URL ({', '.join(conditions)}): for a "
                "conditional create send them in the If-None-Exist header.",
                expression=conditions,
            )
        outcome = interactions.create_patient(
            resource=self.resource_body(request),
            user=request.user,
            base_url=fhir_base_url(request),
            reason=change_reason(request),
            if_none_exist=request.headers.get("If-None-Exist"),
        )
        return _written(request, outcome)

    def put(self, request):
        query = [(k, v) for k, values in request.query_params.lists() for v in values]
        if not query:
            raise FhirError(
                405,
                "not-supported",
                "PUT needs a patient id (Patient/<id>) or a condition (Patient?identifier=...).",
            )
        outcome = interactions.conditional_update(
            query=query,
            resource=self.resource_body(request),
            **_write_context(request),
        )
        return _written(request, outcome)


class PatientInstanceView(FhirView):
    """``/fhir/Patient/<id>``: read, update (If-Match), delete (soft)."""

    permissions = {"GET": READ, "PUT": UPDATE, "DELETE": DELETE}

    def get(self, request, id):
        outcome = interactions.read_patient(id=id, base_url=fhir_base_url(request))
        note_access(request, "read", [outcome.resource["id"]])
        return fhir_response(outcome.resource, outcome.status, outcome.headers)

    def put(self, request, id):
        outcome = interactions.update_patient(
            id=id,
            resource=self.resource_body(request),
            **_write_context(request),
        )
        return _written(request, outcome)

    def delete(self, request, id):
        outcome = interactions.delete_patient(
            id=id, user=request.user, reason=change_reason(request), if_match=request.headers.get("If-Match")
        )
        return fhir_response(None, outcome.status)


class PatientVersionView(FhirView):
    """``/fhir/Patient/<id>/_history/<vid>``: vread. Needs only the read permission: the
    Location of every write points here."""

    permissions = {"GET": READ}

    def get(self, request, id, vid):
        outcome = interactions.vread_patient(id=id, vid=vid, base_url=fhir_base_url(request))
        note_access(request, "vread", [outcome.resource["id"]], detail={"version": vid})
        return fhir_response(outcome.resource, outcome.status, outcome.headers)


# --- History Bundles ----------------------------------------------------------------------


def _count(request) -> int:
    count = whole_number(request.query_params.get("_count", str(DEFAULT_COUNT)))
    if count is None:
        raise FhirError(400, "invalid", "_count must be a whole number.", expression=["_count"])
    return min(count, MAX_COUNT)


def _page(request) -> int:
    page = whole_number(request.query_params.get("_page", "1"), max_digits=9)
    if page is None or page < 1:
        raise FhirError(
            400, "invalid", "_page must be a whole number from 1 (at most 9 digits).", expression=["_page"]
        )
    return page


def _since(request) -> datetime | None:
    raw = request.query_params.get("_since")
    if not raw:
        return None
    raw = raw.replace(" ", "+")  # an unencoded "+" of a time zone arrives as a space
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
        since = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(
            400, "invalid", "_since must be an instant, e.g. 2024-05-01T00:00:00Z.", expression=["_since"]
        ) from None
    if since.tzinfo is None:
        raise FhirError(400, "invalid", "_since needs a time zone (e.g. Z).", expression=["_since"])
    return since


def history_bundle(request, *, path: str, entries: list[dict], total: int, count: int, page: int) -> dict:
    base = fhir_base_url(request)
    params = {k: v for k, v in request.query_params.items() if k not in ("_page",)}

    def link(relation: str, number: int) -> dict:
        return {"relation": relation, "url": f"{base}/{path}?{urlencode({**params, '_page': number})}"}

    links = [link("self", page), link("first", 1)]
    if page > 1:
        links.append(link("previous", page - 1))
    if page * count < total:
        links.append(link("next", page + 1))
    return {"resourceType": "Bundle", "type": "history", "total": total, "link": links, "entry": entries}


class PatientHistoryView(FhirView):
    """``/fhir/Patient/<id>/_history``: every version, newest first (also of a deleted patient)."""

    permissions = {"GET": HISTORY}

    def get(self, request, id):
        count, page, since = _count(request), _page(request), _since(request)
        patient = interactions.load_patient(id, allow_deleted=True)
        versions = [v for v in reversed(patient_history(patient)) if since is None or v.at >= since]
        selected = versions[(page - 1) * count : page * count]
        base = fhir_base_url(request)
        entries = [history_entry(v, base_url=base) for v in selected]
        note_access(request, "history", [patient.uuid])
        return fhir_response(
            history_bundle(
                request,
                path=f"Patient/{id}/_history",
                entries=entries,
                total=len(versions),
                count=count,
                page=page,
            )
        )


class PatientTypeHistoryView(FhirView):
    """``/fhir/Patient/_history``: the versions of all patients, newest first."""

    permissions = {"GET": HISTORY}

    def get(self, request):
        count, page, since = _count(request), _page(request), _since(request)
        rows = Patient.history.all()
        if since is not None:
            rows = rows.filter(history_date__gte=since)
        total = rows.count()
        selected = list(
            rows.order_by("-history_date", "-history_id").values_list(
                "id", "version", "uuid", "history_date"
            )[(page - 1) * count : page * count]
        )
        patients = Patient.all_objects.filter(pk__in={row[0] for row in selected})
        versions = {}
        for patient in patients:
            for version in patient_history(patient):
                versions[(patient.pk, version.version)] = version
        base = fhir_base_url(request)
        entries = []
        for pk, version_number, uuid, at in selected:
            version = versions.get((pk, version_number))
            if version is None:  # purged since: only the deletion remains to be told
                version = Version(uuid=uuid, version=version_number, at=at, action="purged", resource=None)
            entries.append(history_entry(version, base_url=base))
        note_access(request, "history", {row[2] for row in selected})
        return fhir_response(
            history_bundle(
                request, path="Patient/_history", entries=entries, total=total, count=count, page=page
            )
        )
