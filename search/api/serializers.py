"""REST shapes of the clerk search: the query parameters and a ranked page of hits."""

from __future__ import annotations

from rest_framework import serializers

from mpi.api import Pagination
from patients.api.serializers import Code, StrictSerializer, Text
from patients.codes import Gender

# Parameters that search by themselves (a gender only narrows what they find).
SEARCHING = ("q", "name", "family", "given", "birth_date", "identifier", "phone", "email", "postcode")


class SearchQuerySerializer(StrictSerializer):
    """The search page's fields (search/forms.py), with the same limits."""

    q = Text(200, help_text='Free text, as a clerk types it: "jon smyth 1980-03-04", "MRN 77".')
    name = Text(200, help_text='Any name words; "family, given" says which is the family name.')
    family = Text(200)
    given = Text(200)
    birth_date = Text(40, help_text="1980-03-04 or 04/03/1980 (both readings are searched).")
    gender = Code(Gender.choices, help_text="Narrows the other criteria; never searches on its own.")
    identifier = Text(300, help_text="system|value, or a value in any system.")
    phone = Text(40)
    email = Text(254)
    postcode = Text(20)
    page = serializers.IntegerField(min_value=1, max_value=10_000, required=False, default=1)
    page_size = serializers.IntegerField(
        min_value=1, max_value=Pagination.max_page_size, required=False, default=Pagination.page_size
    )

    def validate(self, attrs):
        if not any((attrs.get(name) or "").strip() for name in SEARCHING):
            raise serializers.ValidationError(
                f"Give something to search for: q or one of {', '.join(SEARCHING[1:])}.", code="required"
            )
        return attrs

    def search_kwargs(self) -> dict:
        """``search_patients`` arguments, as the search page makes them (search/forms.py)."""
        data = self.validated_data
        family, given = data.get("family", "").strip(), data.get("given", "").strip()
        # "family, given" tells search_patients which words are the family name.
        structured = f"{family}, {given}" if family else given
        # Structured first: the words before the first comma are the family name.
        name = " ".join(part for part in (structured, data.get("name", "").strip()) if part)
        return {
            "text": data.get("q", ""),
            "name": name,
            "birth_date": data.get("birth_date", ""),
            "gender": data.get("gender", ""),
            "identifier": data.get("identifier", ""),
            "phone": data.get("phone", ""),
            "email": data.get("email", ""),
            "postcode": data.get("postcode", ""),
            "limit": data["page_size"],
            "offset": (data["page"] - 1) * data["page_size"],
        }


class HitIdentifierSerializer(serializers.Serializer):
    system = serializers.CharField()
    value = serializers.CharField()


class SearchHitSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="hit.uuid", help_text="The patient's id.")
    rank = serializers.IntegerField(help_text="Position in the whole result, 1 for the best hit.")
    score = serializers.FloatField(source="hit.score", help_text="Higher is better; 10+ for an exact id.")
    matched = serializers.ListField(
        source="hit.matched",
        child=serializers.CharField(),
        help_text="What matched: name, name:phonetic, name:similar, birth_date, birth_year, "
        "identifier, id, phone, email, postcode.",
    )
    display_name = serializers.CharField(source="hit.display_name")
    birth_date = serializers.DateField(source="hit.birth_date", allow_null=True)
    gender = serializers.CharField(source="hit.gender", allow_blank=True)
    merged = serializers.BooleanField(
        source="hit.merged", help_text="Merged into another record (found only by identifier or id)."
    )
    identifiers = HitIdentifierSerializer(many=True, help_text="The patient's live identifiers.")


class SearchPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Hits in all pages (a lower bound unless count_exact).")
    count_exact = serializers.BooleanField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = SearchHitSerializer(many=True)
