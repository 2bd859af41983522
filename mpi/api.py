"""What every REST endpoint shares: the error body, the exception handler, the JSON
parser, pagination and ``Idempotency-Key`` support.

One error shape for every status (400 to 500), so an integrator writes one handler::

    {"errors": [{"field": "names[0].family", "code": "required", "message": "..."}]}

``field`` is a path into the request body (or a parameter/header name), null when the
error is about the request as a whole. Some errors add a key: ``existing_patient`` on an
identifier conflict (409), ``current_version`` on a version conflict (412).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from functools import wraps

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, OperationalError, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts.models import IdempotencyRecord
from mpi.access import AuditUnavailable
from patients.errors import IdentifierConflict, PatientConflict, VersionConflict
from patients.retry import is_retryable, retry_on_conflict, timed_out

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


# --- The error body -------------------------------------------------------------------


def error(message: str, *, code: str, field: str | None = None, **extra) -> dict:
    # One spelling for codes from DRF ("max_length") and the services ("version-conflict").
    return {"field": field, "code": code.replace("_", "-"), "message": message, **extra}


def error_body(*errors: dict) -> dict:
    return {"errors": list(errors)}


def _flatten(detail, path: str = "") -> list[dict]:
    """DRF's nested error detail -> a flat list with field paths like ``names[0].given[1]``."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            if key in (api_settings.NON_FIELD_ERRORS_KEY, "__all__", "detail"):
                sub = path
            elif isinstance(key, int):  # ListField errors are keyed by index
                sub = f"{path}[{key}]"
            else:
                sub = f"{path}.{key}" if path else str(key)
            items += _flatten(value, sub)
        return items
    if isinstance(detail, list):
        items = []
        for i, value in enumerate(detail):
            # A list of dicts is one entry per item of a nested list; a list of strings
            # is several messages about the same field.
            items += _flatten(value, f"{path}[{i}]" if isinstance(value, dict | list) else path)
        return items
    return [error(str(detail), code=getattr(detail, "code", None) or "invalid", field=path or None)]


def _django_errors(exc: DjangoValidationError) -> list[dict]:
    """The services' ValidationError: keys are already field paths (``names[0].family``)."""
    if not hasattr(exc, "error_dict"):
        return [error(m.message % (m.params or {}), code=m.code or "invalid") for m in exc.error_list]
    items = []
    for field, errors in exc.error_dict.items():
        for e in errors:
            message = e.message % e.params if e.params else e.message
            items.append(
                error(str(message), code=e.code or "invalid", field=None if field == "__all__" else field)
            )
    return items


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "The resource was deleted."
    default_code = "deleted"


class PreconditionRequired(exceptions.APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = "This request needs the version you last read: an If-Match header or a version field."
    default_code = "version-required"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    default_code = "too-large"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was already used with a different request body. "
        "Use a new key for a new request."
    )
    default_code = "idempotency-key-reused"


def _domain_error(exc: PatientConflict) -> Response:
    if isinstance(exc, VersionConflict):
        # A merge names which of its two versions moved (survivor_version, duplicate_version).
        field = exc.field or "version"
        body = error(exc.message, code=exc.code, field=field, current_version=exc.current)
        return Response(
            error_body(body), status=status.HTTP_412_PRECONDITION_FAILED, headers={"ETag": etag(exc.current)}
        )
    extra = {"existing_patient": str(exc.existing.uuid)} if isinstance(exc, IdentifierConflict) else {}
    # Read by name, not by class: the matching app's conflicts (MergeError's list of
    # reasons, a claim's holder) without mpi importing matching.
    if getattr(exc, "conflicts", None):
        extra["conflicts"] = list(exc.conflicts)
    if getattr(exc, "holder", None) is not None:
        extra["claimed_by"] = exc.holder.get_username()
        extra["claimed_until"] = exc.until.isoformat()
    return Response(error_body(error(exc.message, code=exc.code, field=exc.field, **extra)), status=409)


def exception_handler(exc, context) -> Response:
    """DRF's EXCEPTION_HANDLER: every failure becomes the one error shape."""
    # Imported here: rest_framework.views reads the settings that name this module.
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    if isinstance(exc, DjangoValidationError):
        set_rollback()
        return Response(error_body(*_django_errors(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):  # Django's own limit, met before the parser's
        return Response(error_body(error(PayloadTooLarge.default_detail, code="too-large")), status=413)
    if isinstance(exc, SuspiciousOperation):
        # Django's limits on a request (more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters,
        # ...): a 400, as Django answers them outside the API.
        return Response(error_body(error(str(exc), code="invalid")), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PatientConflict):
        set_rollback()
        return _domain_error(exc)
    if isinstance(exc, AuditUnavailable):
        # Every access is audited; one that cannot be, does not happen.
        logger.error("Audit trail unavailable: the request is refused", exc_info=exc)
        set_rollback()
        message = "The access could not be audited, so it was not carried out. Try again later."
        return Response(error_body(error(message, code="audit-unavailable")), status=503)
    if isinstance(exc, OperationalError) and is_retryable(exc):
        # Collided with a concurrent write inside a transaction we could not retry.
        set_rollback()
        message = "The request collided with a concurrent change and was not applied; retry it."
        return Response(error_body(error(message, code="conflict")), status=409, headers={"Retry-After": "1"})
    if timed_out(exc):
        logger.warning("Statement timeout in the REST API: answered 503", exc_info=exc)
        set_rollback()
        message = "The database did not answer in time, so the request was cut short. Retry it later."
        return Response(error_body(error(message, code="timeout")), status=503, headers={"Retry-After": "5"})
    if isinstance(exc, IntegrityError):
        # A concurrent writer won a race the services could not name (the named ones
        # are PatientConflicts). Logged: it may also be a missing validation.
        logger.error("Integrity error reached the REST API", exc_info=exc)
        set_rollback()
        message = "The request conflicts with a concurrent change. Read the resource again and retry."
        return Response(error_body(error(message, code="conflict")), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DataError):
        # The database refused a value the serializers let through: a validation gap.
        logger.error("Data error reached the REST API", exc_info=exc)
        set_rollback()
        message = "A value is out of range or malformed."
        return Response(error_body(error(message, code="invalid")), status=status.HTTP_400_BAD_REQUEST)

    response = drf_exception_handler(exc, context)
    if response is None:
        # Anything else is a bug: log it, never show a stack trace.
        logger.error("Unhandled error in the REST API", exc_info=exc)
        set_rollback()
        message = "Internal error. It has been logged."
        return Response(error_body(error(message, code="server-error")), status=500)
    response.data = error_body(*_flatten(response.data))
    return response


@csrf_exempt  # an unknown path answers 404 to every method, not a CSRF 403 page
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown paths under /api/ answer in the API's error shape, not an HTML page."""
    message = f"No endpoint at {request.path}. API paths end with a slash; see /api/docs/."
    return JsonResponse(error_body(error(message, code="not_found")), status=404)


# --- Parsing and pagination -----------------------------------------------------------


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with a size limit and no 500 on pathological nesting."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        try:
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


class Pagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


# --- ETags -----------------------------------------------------------------------------

_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,10})"?\s*$')


_prototypes: dict[type, serializers.BaseSerializer] = {}


def represent(serializer_class: type[serializers.BaseSerializer], instance) -> dict:
    """``serializer_class(instance).data`` without building the serializer's fields again.

    A ``ModelSerializer`` introspects its model and deep-copies its declared fields for
    every instance it is given (nested ones once more per parent): about a third of a
    full-patient read. Output-only serializers that read nothing from a context can
    keep one bound instance per class and only call its ``to_representation``.
    """
    prototype = _prototypes.get(serializer_class)
    if prototype is None:
        prototype = _prototypes[serializer_class] = serializer_class()
    return prototype.to_representation(instance)


def etag(version: int) -> str:
    return f'W/"{version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version in an If-Match header (``W/"3"``, ``"3"`` or ``3``); None when absent."""
    if value is None:
        return None
    match = _IF_MATCH.match(value)
    if not match:
        raise exceptions.ValidationError(
            {"If-Match": ['Expected the ETag you read, e.g. W/"3" (or "3", or 3).']}, code="invalid"
        )
    return int(match.group(1))


# --- Idempotency-Key -------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft's examples
_REPLAYED_HEADERS = ("ETag", "Location")


def _fingerprint(request) -> str:
    # The parsed body, canonically encoded: key order and whitespace do not matter.
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _claim(request, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """Insert the record for this key, or return the stored one (None when inserted).

    Runs inside the request's transaction: a concurrent request with the same key waits
    on the unique index here until the first one commits or rolls back.
    """
    lookup = {"user": request.user, "key": key, "method": request.method, "path": request.path}
    for _ in range(3):
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(**lookup, request_hash=fingerprint)
            return None
        except IntegrityError as exc:
            if "uniq_idempotency_key" not in str(exc):
                raise
        record = IdempotencyRecord.objects.filter(**lookup).first()
        if record is not None and not record.expired:
            return record
        if record is not None:
            record.delete()  # past its 24 hours: the key may be used afresh
    raise exceptions.APIException("Could not record the Idempotency-Key; retry.")


def idempotent(handler):
    """Make a POST handler honour ``Idempotency-Key``.

    The first successful (2xx) response is stored with a hash of the body; a retry with
    the same key and body gets that response back (header ``Idempotent-Replayed: true``)
    and writes nothing; the same key with another body is a 422. Failed requests write
    nothing, so they are not stored: a retry simply runs again.
    """

    @wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not _KEY.match(key):
            raise exceptions.ValidationError(
                {IDEMPOTENCY_HEADER: ["1 to 255 visible ASCII characters, e.g. a UUID."]}, code="invalid"
            )
        return _replay_or_run(handler, view, request, key, _fingerprint(request), *args, **kwargs)

    return wrapper


@retry_on_conflict  # the whole claim-and-run transaction, when it collided with another writer
def _replay_or_run(handler, view, request, key: str, fingerprint: str, *args, **kwargs):
    with transaction.atomic():
        record = _claim(request, key, fingerprint)
        if record is not None:
            if record.request_hash != fingerprint or record.status_code is None:
                raise IdempotencyKeyReused()
            headers = {**record.response_headers, "Idempotent-Replayed": "true"}
            return Response(record.response_body, status=record.status_code, headers=headers)
        response = handler(view, request, *args, **kwargs)
        if not 200 <= response.status_code < 300:
            transaction.set_rollback(True)
            return response
        IdempotencyRecord.objects.filter(
            user=request.user, key=key, method=request.method, path=request.path
        ).update(
            status_code=response.status_code,
            response_body=json.loads(JSONRenderer().render(response.data) or b"null"),
            response_headers={h: response[h] for h in _REPLAYED_HEADERS if h in response},
        )
        return response


# --- OpenAPI helpers -------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="Path of the offending input, or null.")
    code = serializers.CharField()
    message = serializers.CharField()
    existing_patient = serializers.UUIDField(required=False, help_text="409 identifier-conflict only.")
    current_version = serializers.IntegerField(required=False, help_text="412 version-conflict only.")
    conflicts = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="409 merge-conflict: every reason."
    )
    claimed_by = serializers.CharField(required=False, help_text="409 claimed: who reviews the pair.")
    claimed_until = serializers.DateTimeField(required=False, help_text="409 claimed: until when.")


class ErrorBodySerializer(serializers.Serializer):
    errors = ErrorSerializer(many=True)


_ERROR_DESCRIPTIONS = {
    400: "Invalid input; each error names the field path.",
    401: "No credentials, or a bad, expired or revoked token.",
    403: "Authenticated, but the user's role does not allow this.",
    404: "No such resource.",
    406: "The Accept header asks for something other than JSON.",
    409: "Conflict: the identifier belongs to another patient (existing_patient), or the state forbids it.",
    410: "The patient was deleted (a steward can restore it).",
    412: "The version you sent is not the current one (current_version).",
    413: "The request body is too large.",
    415: "The body is not application/json.",
    422: "The Idempotency-Key was used before with a different body.",
    428: "The version you last read is required (If-Match header or version field).",
    429: "Too many requests; see Retry-After.",
    503: "The access could not be audited, so nothing was read or written; retry later.",
}
COMMON_ERRORS = (401, 403, 406, 429, 503)
BODY_ERRORS = (400, 413, 415)


def error_responses(*codes: int) -> dict:
    return {
        code: OpenApiResponse(ErrorBodySerializer, description=_ERROR_DESCRIPTIONS[code])
        for code in sorted({*COMMON_ERRORS, *codes})
    }


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID). A retry with the same key and body returns the first "
    "response and writes nothing; kept 24 hours.",
)
IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description='The ETag you read, e.g. W/"3". Required for updates unless the body has "version".',
)
REASON_PARAMETER = OpenApiParameter(
    "X-Change-Reason",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Why you make this change; kept in the history (UTF-8 allowed).",
)
ETAG_HEADER = OpenApiParameter(
    "ETag",
    type=str,
    location=OpenApiParameter.HEADER,
    response=[200, 201],
    description='The patient\'s version, e.g. W/"3": send it back in If-Match to update.',
)
