"""Reading and writing the FHIR ``Parameters`` resource of an operation. Pure code.

An operation's input arrives as a ``Parameters`` body (POST) or as query parameters
(GET, only for operations whose inputs are all primitive: FHIR R4 operations.html
#request). Both become an ``OperationInput``, which hands out typed values and, when
a value is missing, repeated or of the wrong type, raises ``OperationError`` whose
issue names the element with a FHIRPath expression (``Parameters.parameter[2].valueInteger``),
so a client knows exactly which part of its request to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticError

from fhir_api.errors import FhirError, issue, unreadable_structure


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: FHIR issue-type ``code`` and a FHIRPath ``expression``."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: str | None = None

    def as_json(self) -> dict[str, Any]:
        return issue(
            self.code,
            self.diagnostics,
            severity=self.severity,
            expression=[self.expression] if self.expression else None,
        )


class OperationError(FhirError):
    """An operation refuses its input: an HTTP status and the OperationOutcome issues
    (a ``FhirError``, so the foundation's view answers it like any other)."""

    def __init__(
        self,
        diagnostics: str = "",
        *,
        status: int = 400,
        code: str = "invalid",
        expression: str | None = None,
        issues: Iterable[Issue] = (),
    ) -> None:
        found = tuple(issues) or (Issue(diagnostics, code=code, expression=expression),)
        super().__init__(
            status,
            found[0].code,
            "; ".join(i.diagnostics for i in found),
            expression=[found[0].expression] if found[0].expression else None,
            issues=[i.as_json() for i in found],
        )
        self.operation_issues = found


@dataclass(frozen=True)
class Parameter:
    index: int  # position in Parameters.parameter (or in the query string)
    name: str
    value_type: str | None = None  # "Boolean", "Identifier", ... from value[x]
    value: Any = None
    resource: dict | None = None
    parts: tuple[Parameter, ...] = field(default=())
    path: str = ""

    @property
    def value_path(self) -> str:
        if self.resource is not None:
            return f"{self.path}.resource"
        return f"{self.path}.value{self.value_type or '[x]'}"


def _parameter(raw: Any, index: int, prefix: str) -> Parameter:
    path = f"{prefix}[{index}]"
    if not isinstance(raw, dict):
        raise OperationError("Each parameter must be an object.", expression=path)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise OperationError("Each parameter needs a name.", code="required", expression=f"{path}.name")
    values = [k for k in raw if k.startswith("value")]
    present = len(values) + ("resource" in raw) + ("part" in raw)
    if present > 1:
        raise OperationError(
            f"Parameter '{name}' has more than one of value[x], resource and part.", expression=path
        )
    parts = raw.get("part") or []
    if not isinstance(parts, list):
        raise OperationError("'part' must be a list.", expression=f"{path}.part")
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise OperationError("'resource' must be a resource.", expression=f"{path}.resource")
    return Parameter(
        index=index,
        name=name,
        value_type=values[0][len("value") :] if values else None,
        value=raw[values[0]] if values else None,
        resource=resource,
        parts=tuple(_parameter(p, i, f"{path}.part") for i, p in enumerate(parts)),
        path=path,
    )


def _expression(loc: tuple) -> str:
    """A pydantic error location -> FHIRPath (``('parameter', 0, 'valueInteger')``)."""
    path = "Parameters"
    for item in loc:
        path += f"[{item}]" if isinstance(item, int) else f".{item}"
    return path


def parse_parameters(body: Any) -> OperationInput:
    """A POSTed body -> OperationInput; OperationError when it is not a valid Parameters.

    The structure is validated with the R4B model (types of every value[x], embedded
    resources included); the values are then read from the JSON as sent, so that an
    embedded resource reaches its own mapper untouched.
    """
    from fhir.resources.R4B.parameters import Parameters

    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise OperationError(
            f"Expected a Parameters resource, not {found or 'an object without resourceType'}.",
            code="structure",
        )
    raw = body.get("parameter") or []
    if not isinstance(raw, list):
        raise OperationError(
            "'parameter' must be a list.", code="structure", expression="Parameters.parameter"
        )
    parameters = [_parameter(p, i, "Parameters.parameter") for i, p in enumerate(raw)]
    try:
        Parameters.model_validate(body)
    except PydanticError as exc:
        raise OperationError(
            issues=[
                Issue(f"{e['msg']}.", code="structure", expression=_expression(e["loc"]))
                for e in exc.errors()[:20]
            ]
        ) from exc
    except (ValueError, TypeError, KeyError) as exc:  # fhir.resources raises these for some inputs
        diagnostics, where = unreadable_structure(body, "Parameters", exc)
        raise OperationError(diagnostics, code="structure", expression=where) from exc
    return OperationInput(parameters)


def query_parameters(query: Mapping[str, list[str]], types: Mapping[str, str]) -> OperationInput:
    """GET query parameters -> OperationInput. ``types`` maps a name to its value type
    (``"Boolean"``, ``"Integer"``, ``"String"``, ``"Uri"``); names starting with "_"
    (``_format``, ...) belong to the HTTP layer and are left out."""
    parameters = []
    for name, values in query.items():
        if name.startswith("_"):
            continue
        value_type = types.get(name, "String")
        for value in values:
            index = len(parameters)
            if value_type == "Boolean":
                if value not in ("true", "false"):
                    raise OperationError(f"'{name}' must be true or false, not {value!r}.", expression=name)
                converted: Any = value == "true"
            elif value_type == "Integer":
                try:
                    converted = int(value)
                except ValueError:
                    raise OperationError(
                        f"'{name}' must be an integer, not {value!r}.", expression=name
                    ) from None
            else:
                converted = value
            parameters.append(
                Parameter(index=index, name=name, value_type=value_type, value=converted, path=name)
            )
    return OperationInput(parameters, from_query=True)


class OperationInput:
    """The parameters of one call, with typed accessors that explain refusals."""

    def __init__(self, parameters: list[Parameter], *, from_query: bool = False) -> None:
        self.parameters = parameters
        self.from_query = from_query

    def names(self) -> set[str]:
        return {p.name for p in self.parameters}

    def reject_unknown(self, allowed: Iterable[str]) -> None:
        """Unknown parameters are refused, not ignored: a misspelt ``onlyCertainMatch``
        silently ignored would change the answer without the client knowing."""
        allowed = tuple(allowed)
        for p in self.parameters:
            if p.name not in allowed:
                raise OperationError(
                    f"Unknown parameter '{p.name}'; this operation takes: {', '.join(allowed)}.",
                    code="not-supported",
                    expression=p.path,
                )

    def all(self, name: str) -> list[Parameter]:
        return [p for p in self.parameters if p.name == name]

    def one(self, name: str, *, required: bool = False) -> Parameter | None:
        found = self.all(name)
        if len(found) > 1:
            raise OperationError(f"Give '{name}' at most once.", expression=found[1].path)
        if not found and required:
            raise OperationError(f"The parameter '{name}' is required.", code="required")
        return found[0] if found else None

    def _typed(self, p: Parameter, *types: str) -> Any:
        if p.value_type not in types or p.resource is not None:
            wanted = " or ".join(f"value{t}" for t in types)
            raise OperationError(f"'{p.name}' must be given as {wanted}.", expression=p.path)
        return p.value

    def boolean(self, name: str, default: bool = False) -> bool:
        p = self.one(name)
        if p is None:
            return default
        value = self._typed(p, "Boolean")
        if not isinstance(value, bool):
            raise OperationError(f"'{name}' must be true or false.", expression=p.value_path)
        return value

    def integer(self, name: str, *, default: int | None = None, minimum: int = 0, maximum: int) -> int | None:
        p = self.one(name)
        if p is None:
            return default
        value = self._typed(p, "Integer", "PositiveInt", "UnsignedInt")
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise OperationError(
                f"'{name}' must be an integer from {minimum} to {maximum}.", expression=p.value_path
            )
        return value

    def string(self, name: str, *, required: bool = False) -> tuple[str, str] | None:
        """(value, FHIRPath) of a string-like parameter, or None when absent."""
        p = self.one(name, required=required)
        if p is None:
            return None
        value = self._typed(p, "String", "Uri", "Code", "Id", "Token", "Canonical", "Url", "Markdown")
        if not isinstance(value, str) or not value.strip():
            raise OperationError(f"'{name}' must be a non-empty string.", expression=p.value_path)
        return value.strip(), p.value_path

    def strings(self, name: str) -> list[tuple[str, str]]:
        out = []
        for p in self.all(name):
            value = self._typed(p, "String", "Uri", "Code", "Token", "Canonical", "Url")
            if not isinstance(value, str) or not value.strip():
                raise OperationError(f"'{name}' must be a non-empty string.", expression=p.value_path)
            out.append((value.strip(), p.value_path))
        return out

    def resource(self, name: str, resource_type: str, *, required: bool = False) -> tuple[dict, str] | None:
        """(resource JSON, FHIRPath) of a parameter carrying a resource of ``resource_type``."""
        p = self.one(name, required=required)
        if p is None:
            return None
        if p.resource is None:
            raise OperationError(f"'{name}' must carry a {resource_type} in 'resource'.", expression=p.path)
        found = p.resource.get("resourceType")
        if found != resource_type:
            raise OperationError(
                f"'{name}' must be a {resource_type}, not {found or 'a resource without resourceType'}.",
                expression=f"{p.path}.resource",
            )
        return p.resource, f"{p.path}.resource"

    def reference(self, name: str) -> tuple[dict, str] | None:
        p = self.one(name)
        if p is None:
            return None
        value = self._typed(p, "Reference")
        if not isinstance(value, dict):
            raise OperationError(f"'{name}' must be a Reference.", expression=p.value_path)
        return value, p.value_path

    def identifiers(self, name: str) -> list[tuple[dict, str]]:
        out = []
        for p in self.all(name):
            value = self._typed(p, "Identifier")
            if not isinstance(value, dict):
                raise OperationError(f"'{name}' must be an Identifier.", expression=p.value_path)
            out.append((value, p.value_path))
        return out


# --- Writing ---------------------------------------------------------------------------


def value(name: str, value_type: str, content: Any) -> dict[str, Any]:
    """One output parameter with a value[x]: ``value("count", "Integer", 3)``."""
    return {"name": name, f"value{value_type}": content}


def resource(name: str, content: dict) -> dict[str, Any]:
    return {"name": name, "resource": content}


def parameters(*entries: dict) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(entries)}


def outcome(*issues: Issue) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.as_json() for i in issues]}
