"""The review queue (/review/): open candidates, most likely first, and claiming them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from matching.claims import (
    CandidateClaimed,
    CandidateDecided,
    claim_candidate,
    claim_next,
    queue_order,
    release_claim,
)
from matching.forms import QUEUE_GRADES, QueueFilterForm
from matching.models import MatchCandidate
from matching.views.common import REVIEW, error_text, get_candidate
from mpi.access import note_access
from patients.models import Name

PAGE_SIZE = 50
FILTERS = ("grade", "age", "assignee")


def queue_params(data) -> dict[str, str]:
    """The queue filters carried from the queue to a candidate page and back."""
    return {key: data[key] for key in FILTERS if data.get(key)}


def queue_url(params: dict[str, str]) -> str:
    url = reverse("matching:queue")
    return f"{url}?{urlencode(params)}" if params else url


def candidate_url(candidate: MatchCandidate, params: dict[str, str] | None = None) -> str:
    url = reverse("matching:candidate", args=[candidate.patient_a.uuid, candidate.patient_b.uuid])
    return f"{url}?{urlencode(params)}" if params else url


def _with_names(queryset):
    names = Name.all_objects.order_by("-primary", "id")
    return queryset.select_related("patient_a", "patient_b", "claimed_by").prefetch_related(
        Prefetch("patient_a__names", queryset=names), Prefetch("patient_b__names", queryset=names)
    )


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_GET
def queue(request):
    form = QueueFilterForm(request.GET or None)
    open_candidates = MatchCandidate.objects.open()
    # Counts per grade under the other filters, so each grade tab says what it holds.
    counts = dict(
        form.filter(open_candidates, request.user, grade=False)
        .values_list("grade")
        .annotate(n=Count("pk"))
        .values_list("grade", "n")
    )
    form.is_valid()
    params = queue_params(getattr(form, "cleaned_data", {}))
    grades = [
        {
            "value": grade.value,
            "label": grade.label,
            "count": counts.get(grade.value, 0),
            "url": queue_url({**params, "grade": grade.value}),
            "current": params.get("grade") == grade.value,
        }
        for grade in QUEUE_GRADES
    ]
    candidates = _with_names(form.filter(open_candidates, request.user).order_by(*queue_order()))
    page = Paginator(candidates, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"candidate": c, "url": candidate_url(c, params)} for c in page.object_list]
    shown = [p.uuid for c in page.object_list for p in (c.patient_a, c.patient_b)]
    note_access(request, "search", shown, query=request.GET.urlencode())
    context = {
        "form": form,
        "grades": grades,
        "total": sum(counts.values()),
        "all_url": queue_url({k: v for k, v in params.items() if k != "grade"}),
        "page": page,
        "rows": rows,
        "params": params,
        "now": timezone.now(),
    }
    fragment = "HX-Request" in request.headers and "HX-History-Restore-Request" not in request.headers
    response = render(request, "matching/_queue.html" if fragment else "matching/queue.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_POST
def review_next(request):
    """Claim the next free candidate of the (filtered) queue and open it.

    With ``skip_a``/``skip_b`` (the pair on screen), that pair is released and the
    search continues after it: "skip to next".
    """
    params = queue_params(request.POST)
    form = QueueFilterForm(params)
    skip = None
    if request.POST.get("skip_a") and request.POST.get("skip_b"):
        try:
            skip = get_candidate(request.POST["skip_a"], request.POST["skip_b"])
        except (Http404, ValidationError):  # a malformed or unknown pair: nothing to skip
            skip = None
    queue_set = form.filter(MatchCandidate.objects.all(), request.user)
    candidate = claim_next(actor=request.user, queue=queue_set, skip=skip)
    if candidate is None:
        messages.info(request, "No more open candidates to review here.")
        return redirect(queue_url(params))
    candidate = MatchCandidate.objects.select_related("patient_a", "patient_b").get(pk=candidate.pk)
    return redirect(candidate_url(candidate, params))


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_POST
def claim(request, a, b):
    """Claim the pair for 15 minutes (or release it, with ``release``)."""
    candidate = get_candidate(a, b)
    params = queue_params(request.POST)
    if "release" in request.POST:
        release_claim(candidate=candidate, actor=request.user)
        messages.success(request, "Claim released: the pair is free for others.")
        return redirect(queue_url(params))
    try:
        claim_candidate(candidate=candidate, actor=request.user)
    except (CandidateClaimed, CandidateDecided) as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, "You are reviewing this pair for the next 15 minutes.")
    return redirect(candidate_url(candidate, params))
