"""The base of every /fhir/ view: auth, permissions, formats and OperationOutcome errors.

``FhirView`` authenticates like the REST API (``Authorization: Bearer <token>`` or the
browser session), checks the permission its ``permissions`` map names for the HTTP
method, parses JSON bodies (``application/fhir+json``, ``application/json``; at most
Django's DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB by default), renders
``application/fhir+json`` (``_format`` and ``Accept`` honoured; XML is not supported:
406/415), and turns every failure into an OperationOutcome: never an HTML page, never
a stack trace.
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, OperationalError
from rest_framework import exceptions, parsers, permissions, renderers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from fhir_api.errors import FhirError, issue, operation_outcome
from fhir_api.mapping import fhir_expression, validation_error
from mpi.access import AuditUnavailable
from mpi.api import Gone, IdempotencyKeyReused, PayloadTooLarge, PreconditionRequired, etag
from patients.errors import IdentifierConflict, PatientConflict, PatientStateError, VersionConflict
from patients.retry import is_retryable, timed_out

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"
# Permission value meaning "anyone, even anonymous" (the CapabilityStatement, unknown paths).
PUBLIC = "public"


def fhir_base_url(request) -> str:
    """The absolute service base, e.g. ``https://mpi.example.org/fhir`` (no trailing slash)."""
    return request.build_absolute_uri(FHIR_PREFIX)


def fhir_response(body: dict | None, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A FHIR response; rendered as ``application/fhir+json`` unless the client asked for json."""
    return Response(body, status=status, headers=headers)


# --- Rendering and content negotiation -------------------------------------------------


class FhirJSONRenderer(renderers.JSONRenderer):
    media_type = FHIR_JSON
    format = "json"
    charset = "utf-8"


class PlainJSONRenderer(renderers.JSONRenderer):
    media_type = "application/json"
    format = "json"
    charset = "utf-8"


_JSON_FORMATS = {"json", FHIR_JSON, "application/json+fhir", "fhir+json"}
_UNSUPPORTED_FORMATS = {
    "xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir", "fhir+xml",
    "ttl", "turtle", "text/turtle", "application/fhir+turtle", "html", "text/html",
}  # fmt: skip


class FhirContentNegotiation(BaseContentNegotiation):
    """``_format`` wins over ``Accept``; JSON only (FHIR JSON unless plain JSON is preferred)."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if _media_type(request.content_type) == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        fhir, plain = renderers[0], renderers[1]
        wanted = request.query_params.get("_format")
        if wanted is not None:
            # An unencoded "+" in a query string arrives as a space.
            wanted = wanted.strip().replace(" ", "+").split(";")[0].lower()
            if wanted == "application/json":
                return plain, plain.media_type
            if wanted in _JSON_FORMATS:
                return fhir, fhir.media_type
            raise exceptions.NotAcceptable(
                f"_format={wanted} is not supported: this server speaks JSON only "
                "(json, application/fhir+json, application/json)."
            )
        ranges = []
        for position, item in enumerate(request.headers.get("Accept", "").split(",")):
            media, _, params = item.strip().partition(";")
            media = media.strip().lower()
            if not media:
                continue
            quality = 1.0
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            if quality > 0:
                ranges.append((-quality, position, media))
        if not ranges:
            return fhir, fhir.media_type
        for _, _, media in sorted(ranges):
            if media in (FHIR_JSON, "application/json+fhir", "application/*", "*/*"):
                return fhir, fhir.media_type
            if media == "application/json":
                return plain, plain.media_type
        raise exceptions.NotAcceptable(
            "This server answers in JSON only: accept application/fhir+json or application/json (XML is "
            "not supported)."
        )


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


# --- Parsing ----------------------------------------------------------------------------


class FhirJSONParser(parsers.JSONParser):
    """JSON bodies with a size limit; ``application/fhir+json`` and its aliases."""

    media_type = FHIR_JSON

    def parse(self, stream, media_type=None, parser_context=None):
        # Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE first (RequestDataTooBig);
        # this guards the streaming case where that setting is None.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 5 * 1024 * 1024
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if _too_deep(data, MAX_JSON_DEPTH):
            # The validation, mapping and Bundle code walk resources recursively: a body
            # nested hundreds deep would end in a RecursionError (a 500) somewhere inside.
            raise exceptions.ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep.")
        return data


# No FHIR resource nests anywhere near this deep (a Bundle entry's extension's extension is ~10).
MAX_JSON_DEPTH = 100


def _too_deep(data, limit: int) -> bool:
    """Whether ``data`` nests more than ``limit`` lists/objects deep (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


class PlainJSONParser(FhirJSONParser):
    media_type = "application/json"


class LegacyFhirJSONParser(FhirJSONParser):
    media_type = "application/json+fhir"  # the DSTU2 spelling some clients still send


# --- Permissions ------------------------------------------------------------------------


class FhirPermission(permissions.BasePermission):
    """The permission ``view.permissions`` names for the request's method."""

    message = "You do not have permission to perform this interaction."

    def has_permission(self, request, view) -> bool:
        method = "GET" if request.method == "HEAD" else request.method  # Django answers HEAD with get()
        if method not in view.permissions:
            return True  # no handler for this method: the view answers 405
        needed = view.permissions[method]
        if needed == PUBLIC:
            return True
        if not (request.user and request.user.is_authenticated):
            return False  # answered 401 with WWW-Authenticate
        codes = (needed,) if isinstance(needed, str) else tuple(needed or ())
        missing = [code for code in codes if not request.user.has_perm(code)]
        if missing:
            self.message = (
                f"Your role does not allow {request.method} {request.path}: it needs the permission "
                f"{', '.join(missing)}."
            )
            return False
        return True


def require_permission(user, code: str, what: str) -> None:
    """For checks inside a request (Bundle entries, operations): 403 unless ``user`` has ``code``."""
    if not user.has_perm(code):
        raise FhirError(403, "forbidden", f"Your role does not allow {what}: it needs the permission {code}.")


# --- Errors -----------------------------------------------------------------------------

_DRF_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    410: "deleted",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    428: "required",
    429: "throttled",
}


def error_response(exc: Exception) -> Response:
    """Any exception as an OperationOutcome response (also used for Bundle entries)."""
    headers: dict[str, str] = {}
    if isinstance(exc, FhirError):
        return Response(exc.to_outcome(), status=exc.status, headers=exc.headers)
    if isinstance(exc, AuditUnavailable):
        logger.error("Audit trail unavailable: the request is refused", exc_info=exc)
        message = "The access could not be audited, so it was not carried out. Try again later."
        return Response(operation_outcome([issue("transient", message)]), status=503)
    if isinstance(exc, IdentifierConflict):
        body = operation_outcome(
            [
                issue(
                    "duplicate",
                    f"Identifier {exc.system}|{exc.value} already belongs to Patient/{exc.existing.uuid}.",
                    expression=[fhir_expression(exc.field)] if exc.field else None,
                )
            ]
        )
        return Response(body, status=409, headers={"Location": f"Patient/{exc.existing.uuid}"})
    if isinstance(exc, VersionConflict):
        body = operation_outcome([issue("conflict", exc.message)])
        return Response(body, status=412, headers={"ETag": etag(exc.current)})
    if isinstance(exc, PatientStateError | PatientConflict):
        body = operation_outcome(
            [issue("conflict", exc.message, expression=[fhir_expression(exc.field)] if exc.field else None)]
        )
        return Response(body, status=409)
    if isinstance(exc, DjangoValidationError):
        error = validation_error(exc)
        return Response(error.to_outcome(), status=error.status)
    if isinstance(exc, RequestDataTooBig):
        message = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        return Response(operation_outcome([issue("too-long", message)]), status=413)
    if isinstance(exc, SuspiciousOperation):
        # Django's limits on a request (more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters, ...).
        return Response(operation_outcome([issue("too-costly", str(exc))]), status=400)
    if isinstance(exc, OperationalError) and is_retryable(exc):
        message = "The request collided with a concurrent change and was not applied; retry it."
        body = operation_outcome([issue("transient", message)])
        return Response(body, status=409, headers={"Retry-After": "1"})
    if timed_out(exc):
        logger.warning("Statement timeout in the FHIR API: answered 503", exc_info=exc)
        message = "The database did not answer in time, so the request was cut short. Retry it later."
        body = operation_outcome([issue("timeout", message)])
        return Response(body, status=503, headers={"Retry-After": "5"})
    if isinstance(exc, IntegrityError):
        logger.error("Integrity error reached the FHIR API", exc_info=exc)
        body = operation_outcome(
            [issue("conflict", "The request conflicts with a concurrent change; retry.")]
        )
        return Response(body, status=409)
    if isinstance(exc, DataError):
        logger.error("Data error reached the FHIR API", exc_info=exc)
        # The database's own words ("value too long for type character varying(200)",
        # "PostgreSQL text fields cannot contain NUL (0x00) bytes") say which rule was broken.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = "A value is out of range or malformed" + (f": {reason}." if reason else ".")
        return Response(operation_outcome([issue("invalid", message)]), status=400)
    if isinstance(exc, exceptions.APIException):
        status = exc.status_code
        if isinstance(exc, exceptions.ValidationError):
            issues = _drf_validation_issues(exc.detail)
        else:
            code = _DRF_CODES.get(status, "processing")
            if isinstance(exc, exceptions.ParseError):
                code = "structure"
            if isinstance(exc, Gone | PreconditionRequired | IdempotencyKeyReused | PayloadTooLarge):
                code = {410: "deleted", 428: "required", 422: "invalid", 413: "too-long"}[status]
            issues = [issue(code, str(exc.detail))]
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(operation_outcome(issues), status=status, headers=headers)
    logger.error("Unhandled error in the FHIR API", exc_info=exc)
    body = operation_outcome([issue("exception", "Internal error. It has been logged.", severity="fatal")])
    return Response(body, status=500)


def _drf_validation_issues(detail, path: str = "") -> list[dict]:
    if isinstance(detail, dict):
        return [i for key, value in detail.items() for i in _drf_validation_issues(value, str(key))]
    if isinstance(detail, list):
        return [i for value in detail for i in _drf_validation_issues(value, path)]
    return [issue("invalid", str(detail), expression=[path] if path else None)]


def fhir_exception_handler(exc, context) -> Response:
    set_rollback()
    return error_response(exc)


class FhirView(APIView):
    """Base of the /fhir/ views.

    Subclasses set ``permissions``: HTTP method -> a permission code (``"patients.view_patient"``),
    a tuple of codes (all needed), ``None`` (any authenticated user) or ``PUBLIC``. Methods
    absent from the map and without a handler answer 405. Raise ``FhirError`` (or let the
    services raise theirs) and return ``fhir_response(...)``.
    """

    permissions: dict[str, str | tuple[str, ...] | None] = {}
    permission_classes = [FhirPermission]
    renderer_classes = [FhirJSONRenderer, PlainJSONRenderer]
    parser_classes = [FhirJSONParser, PlainJSONParser, LegacyFhirJSONParser]
    content_negotiation_class = FhirContentNegotiation
    metadata_class = None  # OPTIONS answers 405: the CapabilityStatement describes the API
    schema = None  # not in the REST API's OpenAPI schema: the CapabilityStatement describes FHIR

    def get_exception_handler(self):
        return fhir_exception_handler

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated(
                "Authentication required: send 'Authorization: Bearer <token>' (tokens come from the admin)."
            )
        raise exceptions.PermissionDenied(detail=message, code=code)

    def resource_body(self, request, resource_type: str | None = "Patient") -> dict:
        """The parsed JSON body, which must be an object (of ``resource_type`` when given)."""
        data = request.data
        if not isinstance(data, dict):
            raise FhirError(400, "structure", "The body must be a JSON object (a FHIR resource).")
        if resource_type is not None and data.get("resourceType") != resource_type:
            raise FhirError(
                400,
                "invalid",
                f"Expected a {resource_type} resource, got resourceType {data.get('resourceType')!r}.",
                expression=["resourceType"],
            )
        return data
