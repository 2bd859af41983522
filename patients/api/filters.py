"""The patient list's filters and ordering (one FilterSet for the API and HTML lists).

These are exact, structured filters on the registry tables. Fuzzy, ranked name search
("find Jon Smyth") is the search app's job (``search.queries.search_patients``).
Name filters are case- and accent-insensitive and match the start of a word.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC

import django_filters
from django import forms
from django.db.models import CharField, Exists, F, Func, OuterRef, Q, Value
from django.db.models.functions import Concat

from patients.codes import PHONE_SYSTEMS, ContactSystem, Gender
from patients.data import clean_text, normalize_email, normalize_phone, normalize_postcode
from patients.models import Address, Contact, Identifier, Name, Patient


class _ArrayToString(Func):
    function = "array_to_string"
    template = "%(function)s(%(expressions)s, ' ')"
    output_field = CharField()


def _unaccent(value: str) -> str:
    # The column side goes through PostgreSQL's unaccent(); the value is stripped here.
    return "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))


def _words_prefix(expression, value: str) -> Q:
    """Every word of ``value`` starts some word of ``expression`` (a space-led string)."""
    query = Q()
    for word in _unaccent(clean_text(value)).split(" "):
        if word:
            query &= Q(**{f"{expression}__unaccent__icontains": f" {word}"})
    return query


def _names_matching(query: Q):
    return Exists(
        Name.all_objects.filter(patient=OuterRef("pk"))
        .annotate(
            _family=Concat(Value(" "), F("family"), output_field=CharField()),
            _given=Concat(Value(" "), _ArrayToString("given"), output_field=CharField()),
            _all=Concat(
                Value(" "), F("family"), Value(" "), _ArrayToString("given"), Value(" "), F("text"),
                output_field=CharField(),
            ),
        )
        .filter(query)
    )  # fmt: skip


class _UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return None
        try:
            # PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows: send UTC.
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("The date-time is out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class _StrictBooleanField(forms.CharField):
    """true/false (any case) or 1/0; anything else is an error, not an ignored filter."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            return self.VALUES[value.strip().lower()]
        except KeyError:
            raise forms.ValidationError(f"Enter true or false, not {value!r}.", code="invalid") from None


class StrictBooleanFilter(django_filters.BooleanFilter):
    """django-filter's BooleanFilter reads an unknown value ("maybe") as no filter at all,
    so a typo returned every patient; this one answers 400."""

    field_class = _StrictBooleanField


class StableOrderingFilter(django_filters.OrderingFilter):
    """Ordering with the primary key as tie-breaker, so that pages never overlap."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value:
            qs = qs.order_by(*qs.query.order_by, "pk")
        return qs


class PatientFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(
        method="filter_name", max_length=200, help_text="Words starting any part of any name."
    )
    family = django_filters.CharFilter(method="filter_family", max_length=200)
    given = django_filters.CharFilter(method="filter_given", max_length=200)
    birth_date = django_filters.DateFilter()
    birth_date_from = django_filters.DateFilter(field_name="birth_date", lookup_expr="gte")
    birth_date_to = django_filters.DateFilter(field_name="birth_date", lookup_expr="lte")
    gender = django_filters.ChoiceFilter(choices=Gender.choices)
    identifier = django_filters.CharFilter(
        method="filter_identifier",
        max_length=511,
        help_text="system|value, system| (any value) or value (any system).",
    )
    phone = django_filters.CharFilter(method="filter_phone", max_length=255)
    email = django_filters.CharFilter(method="filter_email", max_length=255)
    postcode = django_filters.CharFilter(method="filter_postcode", max_length=20)
    active = StrictBooleanFilter()
    managing_organization = django_filters.UUIDFilter(
        field_name="managing_organization__uuid", help_text="The organization's id (/api/v1/organizations/)."
    )
    updated_since = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    ordering = StableOrderingFilter(
        fields=(("updated_at", "updated_at"), ("created_at", "created_at"), ("birth_date", "birth_date")),
        help_text="updated_at, created_at or birth_date; '-' for descending.",
    )

    class Meta:
        model = Patient
        fields = ()

    def filter_name(self, queryset, name, value):
        return queryset.filter(_names_matching(_words_prefix("_all", value)))

    def filter_family(self, queryset, name, value):
        return queryset.filter(_names_matching(_words_prefix("_family", value)))

    def filter_given(self, queryset, name, value):
        return queryset.filter(_names_matching(_words_prefix("_given", value)))

    def filter_identifier(self, queryset, name, value):
        system, bar, ident = value.partition("|")
        if not bar:
            system, ident = "", value
        query = Q(patient=OuterRef("pk"), live=True)
        if system:
            query &= Q(system=clean_text(system))
        if ident:
            query &= Q(value=clean_text(ident))
        return queryset.filter(Exists(Identifier.all_objects.filter(query)))

    def filter_phone(self, queryset, name, value):
        contacts = Contact.all_objects.filter(
            patient=OuterRef("pk"), system__in=PHONE_SYSTEMS, normalized_value=normalize_phone(value)
        )
        return queryset.filter(Exists(contacts))

    def filter_email(self, queryset, name, value):
        contacts = Contact.all_objects.filter(
            patient=OuterRef("pk"), system=ContactSystem.EMAIL, normalized_value=normalize_email(value)
        )
        return queryset.filter(Exists(contacts))

    def filter_postcode(self, queryset, name, value):
        addresses = Address.all_objects.filter(patient=OuterRef("pk"), postal_code=normalize_postcode(value))
        return queryset.filter(Exists(addresses))
