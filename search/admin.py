"""The patient changelist searches through the search index.

``patients`` cannot import ``search`` (ARCHITECTURE.md), so this app re-registers a
subclass of ``PatientAdmin`` whose only change is ``get_search_results``: the box then
understands what the search page understands ("jon smyth 1980-03-04", "MRN 77", a phone,
typos and accents) and lists the best matches first.
"""

from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.db.models import Case, IntegerField, Q, Value, When

from patients.admin import PatientAdmin
from patients.codes import Gender
from patients.models import Patient
from search.queries import MAX_LIMIT, search_patients


class SearchPatientAdmin(PatientAdmin):
    search_help_text = (
        "A name (typos and accents forgiven), a birth date, an identifier, a phone, an email or a postcode,"
        " in any order: “jon smyth 1980-03-04”. The best matches are listed first."
    )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        deleted = request.GET.get("deleted", "no")
        if not term or deleted == "yes":
            # Deleted patients have no index row: only the plain search can find them.
            return super().get_search_results(request, queryset, search_term)
        gender = request.GET.get("gender__exact", "")
        # The gender filter narrows the search itself, so its best matches are not
        # crowded out by the other gender's before the filter applies.
        result = search_patients(text=term, gender=gender if gender in Gender.values else "", limit=MAX_LIMIT)
        ids = [hit.patient_id for hit in result.hits]
        if result.has_more and request.method == "GET":
            self.message_user(
                request,
                f"Showing the best {len(ids)} of {result.total}{'' if result.total_exact else '+'} "
                "matches: add a birth date or an identifier to narrow the search.",
                messages.WARNING,
            )
        if deleted == "all":
            # Live patients through the index, deleted ones through the plain search.
            plain, _ = super().get_search_results(request, queryset, search_term)
            return queryset.filter(Q(pk__in=ids) | Q(pk__in=plain.values("pk"))), False
        queryset = queryset.filter(pk__in=ids)
        if ORDER_VAR not in request.GET:
            # The changelist ordered the queryset before searching; without a column
            # the clerk chose, the search's rank is the order.
            rank = Case(
                *(When(pk=pk, then=Value(n)) for n, pk in enumerate(ids)),
                default=Value(len(ids)),
                output_field=IntegerField(),
            )
            queryset = queryset.order_by(rank, "-pk")
        return queryset, False


admin.site.unregister(Patient)
admin.site.register(Patient, SearchPatientAdmin)
