"""The candidate page (/review/<a>/<b>/): both records side by side, and the decisions.

Every decision first claims the pair (so it fails clearly when another steward holds
it or it was decided meanwhile), then calls the one service for it. What the services
refuse comes back as a message on the re-rendered page, with status 409, never a 500.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from matching.claims import claim_candidate, claim_next, claimed_by_other, release_claim
from matching.forms import MergeForm, QueueFilterForm, ReasonForm
from matching.merging import MergeChoices, link_patients, merge_patients
from matching.models import MatchCandidate
from matching.services import mark_not_duplicate
from matching.sidebyside import compare_rows, describe_changes
from matching.views.common import MERGE, REVIEW, error_text, get_candidate, load_pair
from matching.views.queue import candidate_url, queue_params, queue_url
from mpi.access import note_access
from patients.errors import PatientConflict

FAILED = (PatientConflict, ValidationError)


def _render(request, candidate: MatchCandidate, *, status: int = 200, **forms):
    left, right = load_pair(candidate)
    note_access(request, "read", [left.uuid, right.uuid], detail={"candidate": str(candidate.pk)})
    params = queue_params(request.GET if request.method == "GET" else request.POST)
    evidence = candidate.evidence or {}
    now = timezone.now()
    mine = (
        candidate.claimed_by_id == request.user.pk
        and candidate.claimed_until is not None
        and candidate.claimed_until > now
    )
    context = {
        "candidate": candidate,
        "left": left,
        "right": right,
        "rows": compare_rows(left, right, evidence),
        "guard_rails": evidence.get("guard_rails", []),
        "blocks": candidate.blocks or evidence.get("blocks", []),
        "claimed_by_me": mine,
        "claimed_by_other": claimed_by_other(candidate, request.user, now=now),
        "merge_form": forms.get("merge_form") or MergeForm(left=left, right=right),
        "link_form": forms.get("link_form") or ReasonForm(required=False, prefix="link"),
        "not_duplicate_form": forms.get("not_duplicate_form") or ReasonForm(prefix="notdup"),
        "preview": forms.get("preview"),
        "params": params,
        "queue_url": queue_url(params),
    }
    return render(request, "matching/candidate.html", context, status=status)


def _next_or_queue(request, params: dict[str, str]):
    """After a decision: straight on to the next free pair of the same queue."""
    queue_set = QueueFilterForm(params).filter(MatchCandidate.objects.all(), request.user)
    following = claim_next(actor=request.user, queue=queue_set)
    if following is None:
        messages.info(request, "That was the last open candidate here.")
        return redirect(queue_url(params))
    following = MatchCandidate.objects.select_related("patient_a", "patient_b").get(pk=following.pk)
    return redirect(candidate_url(following, params))


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_GET
def candidate_detail(request, a, b):
    return _render(request, get_candidate(a, b))


@login_required
@permission_required(REVIEW, raise_exception=True)
@permission_required(MERGE, raise_exception=True)
@require_POST
def merge(request, a, b):
    """Merge the pair as the form says; with ``preview``, only show what it would do."""
    candidate = get_candidate(a, b)
    left, right = load_pair(candidate)
    form = MergeForm(request.POST, left=left, right=right)
    if not form.is_valid():
        return _render(request, candidate, merge_form=form, status=400)
    wanted = form.merge_request()
    choices = MergeChoices(
        take_from_duplicate=wanted.take_from_duplicate,
        names=wanted.names,
        addresses=wanted.addresses,
        contacts=wanted.contacts,
    )
    preview = "preview" in request.POST
    try:
        if not preview:
            claim_candidate(candidate=candidate, actor=request.user)
        result = merge_patients(
            survivor=wanted.survivor,
            duplicate=wanted.duplicate,
            actor=request.user,
            reason=wanted.reason,
            choices=choices,
            survivor_version=wanted.survivor_version,
            duplicate_version=wanted.duplicate_version,
            preview=preview,
        )
    except FAILED as exc:
        messages.error(request, error_text(exc))
        candidate.refresh_from_db()
        # Shown again at the current versions: the steward sees the records as they are now.
        left, right = load_pair(candidate)
        fresh = request.POST.copy()
        fresh["left_version"], fresh["right_version"] = left.version, right.version
        return _render(request, candidate, merge_form=MergeForm(fresh, left=left, right=right), status=409)
    if preview:
        return _render(request, candidate, merge_form=form, preview=describe_changes(result.changes))
    release_claim(candidate=candidate, actor=request.user)
    messages.success(
        request,
        f"Merged {wanted.duplicate} into {wanted.survivor}. It can be undone from the merge history.",
    )
    return redirect(reverse("matching:patient", args=[wanted.survivor.uuid]))


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_POST
def link(request, a, b):
    """Record the pair as one person without merging (a seealso link both ways)."""
    candidate = get_candidate(a, b)
    form = ReasonForm(request.POST, required=False, prefix="link")
    if not form.is_valid():
        return _render(request, candidate, link_form=form, status=400)
    reason = form.cleaned_data["reason"].strip() or "Same person, both records kept (steward review)."
    try:
        claim_candidate(candidate=candidate, actor=request.user)
        link_patients(
            patient=candidate.patient_a, other=candidate.patient_b, actor=request.user, reason=reason
        )
    except FAILED as exc:
        messages.error(request, error_text(exc))
        candidate.refresh_from_db()
        return _render(request, candidate, link_form=form, status=409)
    release_claim(candidate=candidate, actor=request.user)
    messages.success(request, f"Linked {candidate.patient_a} and {candidate.patient_b} as the same person.")
    return _next_or_queue(request, queue_params(request.POST))


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_POST
def not_duplicate(request, a, b):
    candidate = get_candidate(a, b)
    form = ReasonForm(request.POST, prefix="notdup")
    if not form.is_valid():
        messages.error(request, "Say why these are different people.")
        return _render(request, candidate, not_duplicate_form=form, status=400)
    try:
        claim_candidate(candidate=candidate, actor=request.user)
        mark_not_duplicate(candidate=candidate, actor=request.user, reason=form.cleaned_data["reason"])
    except FAILED as exc:
        messages.error(request, error_text(exc))
        candidate.refresh_from_db()
        return _render(request, candidate, not_duplicate_form=form, status=409)
    release_claim(candidate=candidate, actor=request.user)
    messages.success(request, f"Marked {candidate.patient_a} and {candidate.patient_b} as different people.")
    return _next_or_queue(request, queue_params(request.POST))
