"""Merge history (/merges/) and undoing a merge (/merges/<uuid>/)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from matching.forms import ReasonForm
from matching.merging import unmerge_patients
from matching.models import Merge, MergeStatus
from matching.sidebyside import describe_changes
from matching.views.common import MERGE, error_text
from mpi.access import note_access
from patients.errors import PatientConflict
from patients.models import Name

PAGE_SIZE = 50
VIEW_MERGE = "matching.view_merge"


def _with_people(queryset):
    names = Name.all_objects.order_by("-primary", "id")
    return queryset.select_related("survivor", "duplicate", "actor", "unmerged_by").prefetch_related(
        Prefetch("survivor__names", queryset=names), Prefetch("duplicate__names", queryset=names)
    )


@login_required
@permission_required(VIEW_MERGE, raise_exception=True)
@require_GET
def merge_list(request):
    status = request.GET.get("status", "")
    merges = _with_people(Merge.objects.all())
    if status in MergeStatus.values:
        merges = merges.filter(status=status)
    else:
        status = ""
    page = Paginator(merges.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    shown = [p.uuid for m in page.object_list for p in (m.survivor, m.duplicate)]
    note_access(request, "search", shown, query=request.GET.urlencode())
    statuses = [("", "All"), *MergeStatus.choices]
    return render(request, "matching/merges.html", {"page": page, "status": status, "statuses": statuses})


def _render(request, merge: Merge, form: ReasonForm | None = None, status: int = 200):
    pair = [merge.survivor.uuid, merge.duplicate.uuid]
    note_access(request, "read", pair, detail={"merge": str(merge.uuid)})
    context = {"merge": merge, "form": form or ReasonForm(), "changes": describe_changes(merge.changes or {})}
    return render(request, "matching/merge.html", context, status=status)


@login_required
@permission_required(VIEW_MERGE, raise_exception=True)
@require_GET
def merge_detail(request, uuid):
    """The merge: who, when, why, and what it changed; the unmerge form if it stands."""
    return _render(request, get_object_or_404(_with_people(Merge.objects.all()), uuid=uuid))


@login_required
@permission_required(VIEW_MERGE, raise_exception=True)
@permission_required(MERGE, raise_exception=True)
@require_POST
def unmerge(request, uuid):
    merge = get_object_or_404(_with_people(Merge.objects.all()), uuid=uuid)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the merge is undone.")
        return _render(request, merge, form, status=400)
    try:
        unmerge_patients(merge=merge, actor=request.user, reason=form.cleaned_data["reason"].strip())
    except (PatientConflict, ValidationError) as exc:
        messages.error(request, error_text(exc))
        merge.refresh_from_db()
        return _render(request, merge, form, status=409)
    messages.success(request, f"Unmerged: {merge.duplicate} and {merge.survivor} are separate records again.")
    return redirect("matching:merge", uuid=merge.uuid)
