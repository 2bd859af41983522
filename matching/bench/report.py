"""The side-by-side tables printed by ``bench_match``."""

from __future__ import annotations

SYSTEMS = (
    ("ours", "this matcher"),
    ("ours_matcher_only", "  matcher only"),
    ("ours_trained", "ours, EM"),
    ("ours_trained_matcher_only", "  EM, matcher only"),
    ("splink", "Splink (EM)"),
)


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def dataset_table(result: dict) -> list[str]:
    load = result["load"]
    t = result["thresholds"]
    lines = [
        f"== {result['dataset']} ({result['link_type']}): {result['records']} records, "
        f"{result['true_pairs']} true pairs; probable >= {t['probable']}, certain >= {t['certain']}",
        f"   loaded through register_patient: {load['registered']} in {load['seconds']} s "
        f"({load['per_second']}/s), {load['refused']} refused, {load['identifier_conflicts']} "
        f"registered without a national id another record held ({load['identifier_conflicts_true']} of "
        "them true duplicates)",
        f"   {'system':<18}{'P@prob':>8}{'R@prob':>8}{'F1@prob':>8}{'P@cert':>8}{'R@cert':>8}"
        f"{'F1@cert':>8}{'bestF1':>8}{'block':>8}{'twins':>6}{'time s':>8}",
    ]
    for key, label in SYSTEMS:
        s = result.get(key)
        if s is None:
            continue
        p, c = s["probable"], s["certain"]
        twins = "-" if s["twins_certain"] is None else str(s["twins_certain"])
        if s.get("cached"):
            label = f"{label} *"
        lines.append(
            f"   {label:<18}{_f(p['precision']):>8}{_f(p['recall']):>8}{_f(p['f1']):>8}"
            f"{_f(c['precision']):>8}{_f(c['recall']):>8}{_f(c['f1']):>8}{_f(s['best']['f1']):>8}"
            f"{_f(s['pair_completeness']):>8}{twins:>6}{s['seconds']:>8}"
        )
    analysis = result.get("analysis", {}).get("probable")
    if analysis:
        lines.append(
            f"   at probable the matcher misses {analysis['missed']} true pairs "
            f"({analysis['not_retrieved']} never retrieved) and accepts "
            f"{analysis['wrongly_accepted']} wrong ones"
        )
        for pattern, count in analysis["missed_patterns"][:4]:
            lines.append(f"     missed {count:>5}: {pattern or '(all exact)'}")
        for pattern, count in analysis["wrong_patterns"][:3]:
            lines.append(f"     wrong  {count:>5}: {pattern or '(all exact)'}")
    return lines


def summary_lines(result: dict) -> list[str]:
    """The table's title and its rows, without the load line and the analysis."""
    rows = sum(result.get(key) is not None for key, _ in SYSTEMS)
    lines = dataset_table(result)
    return [lines[0], *lines[2 : 3 + rows]]


def latency_lines(latency: dict) -> list[str]:
    return [
        f"== match_patient latency at {latency['patients']} patients ({latency['probes']} probes, "
        f"load {latency['load_seconds']} s): p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, "
        f"p99 {latency['p99_ms']:.1f} ms (target p95 <= 25 ms)"
    ]
