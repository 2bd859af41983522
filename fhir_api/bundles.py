"""``POST /fhir`` with a ``transaction`` or ``batch`` Bundle.

transaction: all or nothing, in one database transaction, entries processed in the
order the spec prescribes (DELETE, POST, PUT, GET), ``urn:uuid:`` fullUrls of created
patients substituted in the references of the other entries; the first failing entry
fails the whole Bundle with its own status and an OperationOutcome pointing at the
entry. batch: every entry on its own (a savepoint each), failures reported in the
entry's response; references between entries are not resolved, as the spec says.
Responses come in the order of the request's entries.
http://hl7.org/fhir/R4/http.html#transaction
"""

from __future__ import annotations

import re
from http import HTTPStatus

from django.db import transaction
from django.http import QueryDict
from fhir.resources.R4B.bundle import Bundle as R4BBundle

from fhir_api import interactions
from fhir_api.errors import FhirError
from fhir_api.mapping import structure_issues
from fhir_api.views.base import error_response, require_permission

MAX_ENTRIES = 500
_METHODS = ("DELETE", "POST", "PUT", "GET", "HEAD")
_PERMISSION = {
    "DELETE": (interactions.DELETE, "DELETE"),
    "POST": (interactions.CREATE, "POST (create)"),
    "PUT": (interactions.UPDATE, "PUT (update)"),
    "GET": (interactions.READ, "GET (read)"),
    "HEAD": (interactions.READ, "GET (read)"),
}
_INSTANCE = re.compile(r"^Patient/([^/?]+)$")
_VERSION = re.compile(r"^Patient/([^/?]+)/_history/([^/?]+)$")


def _status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _entry_error(index: int, exc: FhirError) -> FhirError:
    """The error of entry ``index``, with expressions re-rooted at the entry."""
    issues = exc.to_outcome()["issue"]
    for item in issues:
        item["diagnostics"] = f"Bundle.entry[{index}]: {item['diagnostics']}"
        item["expression"] = [
            re.sub(r"^Patient(?=\.|\[|$)", f"Bundle.entry[{index}].resource", e)
            for e in item.get("expression", [])
        ] or [f"Bundle.entry[{index}]"]
    return FhirError(
        exc.status, issues[0]["code"], issues[0]["diagnostics"], issues=issues, headers=exc.headers
    )


def _as_fhir_error(exc: Exception) -> FhirError:
    if isinstance(exc, FhirError):
        return exc
    response = error_response(exc)
    issues = response.data["issue"]
    return FhirError(response.status_code, issues[0]["code"], issues[0]["diagnostics"], issues=issues)


def _relative(url: str, base_url: str) -> str:
    url = (url or "").strip()
    if url.startswith(base_url):
        url = url[len(base_url) :]
    return url.lstrip("/")


def _validate(bundle: dict, base_url: str) -> list[dict]:
    structure = structure_issues(bundle, R4BBundle, "Bundle")
    if structure:
        raise FhirError(400, "structure", structure[0]["diagnostics"], issues=structure)
    if bundle.get("type") not in ("transaction", "batch"):
        raise FhirError(
            400,
            "invalid",
            f"Bundle.type must be transaction or batch, not {bundle.get('type')!r}.",
            expression=["Bundle.type"],
        )
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FhirError(
            400, "structure", "Bundle.entry must be a list of objects.", expression=["Bundle.entry"]
        )
    if len(entries) > MAX_ENTRIES:
        raise FhirError(
            413, "too-costly", f"At most {MAX_ENTRIES} entries per Bundle.", expression=["Bundle.entry"]
        )
    for i, entry in enumerate(entries):
        request = entry.get("request")
        if not isinstance(request, dict) or request.get("method") not in _METHODS or not request.get("url"):
            raise FhirError(
                400,
                "required",
                f"Bundle.entry[{i}].request needs a method (GET, POST, PUT, DELETE) and a url.",
                expression=[f"Bundle.entry[{i}].request"],
            )
        resource = entry.get("resource")
        if request["method"] in ("POST", "PUT") and not isinstance(resource, dict):
            raise FhirError(
                400,
                "required",
                f"Bundle.entry[{i}] needs a resource.",
                expression=[f"Bundle.entry[{i}].resource"],
            )
        path = _relative(request["url"], base_url).split("?")[0]
        if request["method"] != "GET" and path != "Patient" and not path.startswith("Patient/"):
            raise FhirError(
                400,
                "not-supported",
                f"Bundle.entry[{i}]: only Patient is supported, not {request['url']!r}.",
                expression=[f"Bundle.entry[{i}].request.url"],
            )
    return entries


def _substitute(value, ids: dict[str, str]):
    """A copy of ``value`` with ``reference``s to fullUrls of created entries replaced."""
    if isinstance(value, dict):
        return {
            k: ids.get(v, v) if k == "reference" and isinstance(v, str) else _substitute(v, ids)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    return value


def _references(value) -> set[str]:
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return found.union(*(_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def _without_links_to(resource: dict, full_urls: set[str]) -> dict:
    links = [
        link
        for link in resource.get("link", [])
        if (link.get("other") or {}).get("reference") not in full_urls
    ]
    return {**resource, "link": links} if links else {k: v for k, v in resource.items() if k != "link"}


def _response_entry(outcome: interactions.Outcome, base_url: str) -> dict:
    response = {"status": _status_line(outcome.status)}
    if outcome.patient is not None and outcome.status in (200, 201) and "Location" in outcome.headers:
        response["location"] = f"Patient/{outcome.patient.uuid}/_history/{outcome.patient.version}"
    if "ETag" in outcome.headers:
        response["etag"] = outcome.headers["ETag"]
    if outcome.patient is not None and outcome.status in (200, 201):
        response["lastModified"] = outcome.patient.updated_at.isoformat()
    entry: dict = {}
    if (
        outcome.patient is not None
        and outcome.resource is not None
        and outcome.resource.get("resourceType") == "Patient"
    ):
        entry["fullUrl"] = f"{base_url}/Patient/{outcome.patient.uuid}"
    if outcome.resource is not None:
        entry["resource"] = outcome.resource
    entry["response"] = response
    return entry


class _Processor:
    def __init__(self, *, user, base_url: str, resolve: bool) -> None:
        self.user = user
        self.base_url = base_url
        self.resolve = resolve
        self.ids: dict[str, str] = {}  # fullUrl of a created/matched entry -> "Patient/<uuid>"

    def run(self, entry: dict) -> interactions.Outcome:
        request = entry["request"]
        method = request["method"]
        code, what = _PERMISSION[method]
        url = _relative(request["url"], self.base_url)
        path, _, query = url.partition("?")
        if method in ("GET", "HEAD") and (_VERSION.match(path) is None and path.endswith("_history")):
            code, what = interactions.HISTORY, "GET (history)"
        require_permission(self.user, code, what)
        resource = _substitute(entry.get("resource"), self.ids) if self.resolve else entry.get("resource")
        if method == "POST":
            if path != "Patient":
                raise FhirError(400, "invalid", "POST entries go to Patient.", expression=["request.url"])
            outcome = interactions.create_patient(
                resource=resource,
                user=self.user,
                base_url=self.base_url,
                if_none_exist=request.get("ifNoneExist"),
            )
            return self._created(entry, outcome)
        if method == "PUT":
            if path == "Patient" and query:
                return interactions.conditional_update(
                    query=query,
                    resource=resource,
                    user=self.user,
                    base_url=self.base_url,
                    if_match=request.get("ifMatch"),
                )
            return interactions.update_patient(
                id=self._id(path),
                resource=resource,
                user=self.user,
                base_url=self.base_url,
                if_match=request.get("ifMatch"),
            )
        if method == "DELETE":
            if query:
                raise FhirError(
                    400, "not-supported", "Conditional delete is not supported.", expression=["request.url"]
                )
            return interactions.delete_patient(
                id=self._id(path), user=self.user, if_match=request.get("ifMatch")
            )
        return self._get(path, query)

    def _id(self, path: str) -> str:
        match = _INSTANCE.match(path)
        if match is None:
            raise FhirError(
                400, "invalid", f"Expected Patient/<id>, got {path!r}.", expression=["request.url"]
            )
        return match.group(1)

    def _created(self, entry: dict, outcome: interactions.Outcome) -> interactions.Outcome:
        if entry.get("fullUrl") and outcome.patient is not None:
            self.ids[entry["fullUrl"]] = f"Patient/{outcome.patient.uuid}"
        return outcome

    def _get(self, path: str, query: str) -> interactions.Outcome:
        from fhir_api.search import search_bundle

        if match := _VERSION.match(path):
            return interactions.vread_patient(id=match.group(1), vid=match.group(2), base_url=self.base_url)
        if match := _INSTANCE.match(path):
            return interactions.read_patient(id=match.group(1), base_url=self.base_url)
        if path == "Patient":
            bundle = search_bundle(QueryDict(query), base_url=self.base_url, user=self.user)
            return interactions.Outcome(status=200, resource=bundle)
        raise FhirError(
            400, "not-supported", f"GET {path!r} is not supported in a Bundle.", expression=["request.url"]
        )


def _transaction(entries: list[dict], processor: _Processor) -> list[dict]:
    # The same resource may not be touched twice (http.html#trules).
    touched: dict[str, int] = {}
    for i, entry in enumerate(entries):
        request = entry["request"]
        path = _relative(request["url"], processor.base_url).split("?")[0]
        if request["method"] in ("PUT", "DELETE") and _INSTANCE.match(path):
            if path in touched:
                raise FhirError(
                    400,
                    "invalid",
                    f"Bundle.entry[{touched[path]}] and Bundle.entry[{i}] both change {path}.",
                    expression=[f"Bundle.entry[{i}].request.url"],
                )
            touched[path] = i
    full_urls = [e.get("fullUrl") for e in entries if e["request"]["method"] == "POST" and e.get("fullUrl")]
    if len(full_urls) != len(set(full_urls)):
        raise FhirError(
            400, "invalid", "Two entries have the same fullUrl.", expression=["Bundle.entry.fullUrl"]
        )

    outcomes: dict[int, interactions.Outcome] = {}

    def indexes(*methods: str) -> list[int]:
        return [i for i, entry in enumerate(entries) if entry["request"]["method"] in methods]

    with transaction.atomic():
        for i in indexes("DELETE"):
            outcomes[i] = _guarded(i, lambda i=i: processor.run(entries[i]))
        deferred = []
        for i, strip in _post_order(entries, indexes("POST")):
            outcomes[i] = _guarded(i, lambda i=i, strip=strip: _post(entries[i], processor, strip))
            if strip:
                deferred.append(i)
        # A cycle among new patients: now that all of them exist, write the links left out.
        for i in deferred:
            outcomes[i] = _guarded(i, lambda i=i: _complete_links(entries[i], outcomes[i], processor))
        for i in indexes("PUT") + indexes("GET", "HEAD"):
            outcomes[i] = _guarded(i, lambda i=i: processor.run(entries[i]))
    return [_response_entry(outcomes[i], processor.base_url) for i in range(len(entries))]


def _post_order(entries: list[dict], posts: list[int]) -> list[tuple[int, set[str]]]:
    """POST entries in an order where a patient is created after those it references;
    in a cycle, the first is created without its links to the others (set returned)."""
    full_url = {i: entries[i].get("fullUrl") for i in posts}
    pending = {i: _references(entries[i].get("resource")) & (set(full_url.values()) - {None}) for i in posts}
    done: set[str] = set()
    result = []
    remaining = list(posts)
    while remaining:
        ready = next((i for i in remaining if pending[i] <= done), None)
        strip: set[str] = set()
        if ready is None:
            ready = remaining[0]
            strip = pending[ready] - done
        remaining.remove(ready)
        result.append((ready, strip))
        if full_url[ready]:
            done.add(full_url[ready])
    return result


def _post(entry: dict, processor: _Processor, strip: set[str]) -> interactions.Outcome:
    if strip:
        entry = {**entry, "resource": _without_links_to(entry["resource"], strip)}
    return processor.run(entry)


def _complete_links(
    entry: dict, created: interactions.Outcome, processor: _Processor
) -> interactions.Outcome:
    resource = {**_substitute(entry["resource"], processor.ids), "id": str(created.patient.uuid)}
    outcome = interactions.update_patient(
        id=str(created.patient.uuid), resource=resource, user=processor.user, base_url=processor.base_url
    )
    outcome.status = created.status
    return outcome


def _guarded(index: int, run) -> interactions.Outcome:
    try:
        return run()
    except Exception as exc:
        raise _entry_error(index, _as_fhir_error(exc)) from exc


def _batch(entries: list[dict], processor: _Processor) -> list[dict]:
    results = []
    for entry in entries:
        try:
            with transaction.atomic():
                outcome = processor.run(entry)
            results.append(_response_entry(outcome, processor.base_url))
        except Exception as exc:
            error = _as_fhir_error(exc)
            results.append(
                {"response": {"status": _status_line(error.status), "outcome": error.to_outcome()}}
            )
    return results


def process_bundle(bundle: dict, *, user, base_url: str) -> dict:
    """The ``transaction-response`` or ``batch-response`` Bundle; a failed transaction raises."""
    entries = _validate(bundle, base_url)
    kind = bundle["type"]
    processor = _Processor(user=user, base_url=base_url, resolve=(kind == "transaction"))
    results = _transaction(entries, processor) if kind == "transaction" else _batch(entries, processor)
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": results}
