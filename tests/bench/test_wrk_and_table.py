"""Pure parts of the benchmark: reading wrk's output, judging targets, the table."""

from __future__ import annotations

from bench.client import parse_wrk
from bench.report import Figure, table

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:41234
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    93.54ms   30.21ms 251.00ms   70.00%
    Req/Sec    42.10     10.00    60.00     70.00%
  Latency Distribution
     50%   93.49ms
     75%  110.00ms
     90%  138.51ms
     99%    1.20s
  426 requests in 5.10s, 1.02MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:     83.53
Transfer/sec:    204.00KB
"""


def test_parse_wrk_reads_count_duration_errors_and_percentiles():
    load = parse_wrk(WRK_OUTPUT, connections=8)
    assert (load.generator, load.requests, load.seconds) == ("wrk", 426, 5.1)
    assert round(load.rate, 1) == 83.5
    assert load.unexpected == 5 + 2 + 1  # non-2xx answers and socket errors
    assert load.latency_ms == {"p50": 93.49, "p90": 138.51, "p99": 1200.0}


def test_targets_judge_p95_for_latency_and_value_for_rates():
    slow_read = Figure("read_rest", "REST read", "ms", p50=5, p95=12, p99=20, floor=4)
    fast_match = Figure("rps_match", "match mix", "req/s", value=350, floor=1400)
    assert slow_read.passed is False and slow_read.ratio == 3.0
    assert fast_match.passed is True and fast_match.ratio == 0.25
    assert Figure("read_fhir", "FHIR read", "ms", p95=3).passed is None  # no target

    lines = table([slow_read, fast_match])
    assert lines[0].split()[:4] == ["figure", "p50", "ms", "p95"]
    assert "p95 <= 10 ms" in lines[2] and lines[2].endswith("FAIL")
    assert "350 req/s" in lines[3] and "0.25x" in lines[3] and lines[3].endswith("PASS")
