"""The dashboard (/): the registry and the review work at a glance."""

from __future__ import annotations

from datetime import datetime, time

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from matching.charts import daily_bar_chart, days_ending
from matching.forms import QUEUE_GRADES
from matching.models import MatchCandidate, Merge
from matching.views.common import REVIEW
from matching.views.queue import queue_url
from patients.models import Patient

DAYS = 30


def _per_day(queryset, field: str, since) -> dict:
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(day=TruncDate(field))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return dict(rows)


@login_required
@permission_required(REVIEW, raise_exception=True)
@require_GET
def dashboard(request):
    today = timezone.localdate()
    days = days_ending(today, DAYS)
    since = timezone.make_aware(datetime.combine(days[0], time.min))
    merged = _per_day(Merge.objects.all(), "created_at", since)
    unmerged = _per_day(Merge.objects.filter(unmerged_at__isnull=False), "unmerged_at", since)
    open_counts = dict(
        MatchCandidate.objects.open().values_list("grade").annotate(n=Count("pk")).values_list("grade", "n")
    )
    grades = [
        {
            "label": g.label,
            "value": g.value,
            "count": open_counts.get(g.value, 0),
            "url": queue_url({"grade": g.value}),
        }
        for g in QUEUE_GRADES
    ]
    now = timezone.now()
    context = {
        "patients": Patient.objects.filter(active=True).count(),
        "inactive": Patient.objects.filter(active=False).count(),
        "grades": grades,
        "open_total": sum(open_counts.values()),
        "mine": MatchCandidate.objects.open().filter(claimed_by=request.user, claimed_until__gt=now).count(),
        "chart": daily_bar_chart(days, {"merges": merged, "unmerges": unmerged}),
        "days": [{"day": d, "merges": merged.get(d, 0), "unmerges": unmerged.get(d, 0)} for d in days],
        "merges_total": sum(merged.values()),
        "unmerges_total": sum(unmerged.values()),
        "period_days": DAYS,
    }
    return render(request, "matching/dashboard.html", context)
