"""The patient page (/patients/<uuid>/): the record, its identity links, its open
candidates, its merges and its history timeline."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Prefetch, Q
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from matching.models import MatchCandidate, Merge
from matching.timeline import patient_timeline
from matching.views.common import REVIEW, VIEW_PATIENT
from matching.views.queue import candidate_url
from mpi.access import note_access
from patients.codes import LinkType
from patients.models import Link, Name, Patient

# Identity links as the page names them, in this order.
LINK_SECTIONS = (
    (LinkType.REPLACED_BY, "Replaced by (merged into)"),
    (LinkType.REPLACES, "Merged from"),
    (LinkType.SEEALSO, "Same person (see also)"),
    (LinkType.REFER, "Refers to"),
)


@login_required
@permission_required(VIEW_PATIENT, raise_exception=True)
@require_GET
def patient_detail(request, uuid):
    # all_objects: a deleted or merged-away record stays readable, with a banner.
    patient = get_object_or_404(Patient.all_objects.with_children(), uuid=uuid)
    names = Name.all_objects.order_by("-primary", "id")
    links = Link.all_objects.filter(patient=patient).prefetch_related(
        Prefetch("other__names", queryset=names)
    )
    sections = [
        (label, [link for link in links if link.type == link_type]) for link_type, label in LINK_SECTIONS
    ]
    candidates = (
        MatchCandidate.objects.open()
        .involving(patient)
        .select_related("patient_a", "patient_b", "claimed_by")
        .prefetch_related(
            Prefetch("patient_a__names", queryset=names), Prefetch("patient_b__names", queryset=names)
        )
        .order_by("-probability", "pk")
    )
    candidate_rows = [
        {
            "candidate": c,
            "other": c.patient_b if c.patient_a_id == patient.pk else c.patient_a,
            "url": candidate_url(c),
        }
        for c in candidates
    ]
    merges = (
        Merge.objects.filter(Q(survivor=patient) | Q(duplicate=patient))
        .select_related("survivor", "duplicate", "actor")
        .prefetch_related(
            Prefetch("survivor__names", queryset=names), Prefetch("duplicate__names", queryset=names)
        )
        .order_by("-created_at", "-id")
    )
    shown = [patient.uuid, *(row["other"].uuid for row in candidate_rows)]
    note_access(request, "read", shown)
    context = {
        "patient": patient,
        "link_sections": [(label, items) for label, items in sections if items],
        "merged_into": next((link.other for link in links if link.type == LinkType.REPLACED_BY), None),
        "candidate_rows": candidate_rows,
        "can_review": request.user.has_perm(REVIEW),
        "merges": merges,
        "timeline": patient_timeline(patient),
    }
    return render(request, "matching/patient.html", context)
