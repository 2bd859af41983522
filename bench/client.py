"""HTTP on loopback: one client timing requests one at a time, and the load generators.

Latency is measured by a single client (``time_requests``): each figure is the whole
stack — TCP connect (gunicorn's sync workers close the connection after each answer,
so every request pays it, ``/healthz`` included), the WSGI app, PostgreSQL.

Throughput is measured by Debian's ``wrk`` when it is installed (C, negligible CPU),
else by ``python_load``: processes each sending requests back to back over their own
connection. Both run on the same cores as the server, which the table says.
"""

from __future__ import annotations

import http.client
import multiprocessing
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.data import Request


@dataclass
class Timed:
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unexpected statuses, first few
    error_count: int = 0
    bodies: list[bytes] = field(default_factory=list)


class HttpClient:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, request: Request) -> tuple[int, bytes, float]:
        headers = {"Authorization": f"Bearer {self.token}", **request.headers}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        started = time.perf_counter()
        try:
            self.connection.request(request.method, request.path, body=request.body, headers=headers)
            response = self.connection.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError):
            # A connection closed under us: one retry on a fresh one (not timed separately).
            self.connection.close()
            self.connection.request(request.method, request.path, body=request.body, headers=headers)
            response = self.connection.getresponse()
            body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, body, elapsed

    def close(self) -> None:
        self.connection.close()


def time_requests(
    client: HttpClient, requests: list[Request], *, warmup: int, keep_bodies: bool = False
) -> Timed:
    """Send each request once, in order; the first ``warmup`` are not timed."""
    timed = Timed()
    for i, request in enumerate(requests):
        status, body, ms = client.send(request)
        if status != request.expect:
            timed.error_count += 1
            if len(timed.errors) < 5:
                timed.errors.append(f"{request.method} {request.path} -> {status}: {body[:300]!r}")
        if i >= warmup:
            timed.ms.append(ms)
            if keep_bodies:
                timed.bodies.append(body)
    return timed


# --- Load generators ----------------------------------------------------------------------


@dataclass
class Load:
    generator: str  # "wrk" or "python"
    requests: int
    seconds: float
    unexpected: int  # answers with another status than the mix expects (wrk: non-2xx/3xx)
    connections: int
    latency_ms: dict[str, float] = field(default_factory=dict)  # wrk's percentiles, when given

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


_WRK_SCRIPT = """
local lines = {}
for line in io.lines("%(data)s") do lines[#lines + 1] = line end
local requests = {}
for i, line in ipairs(lines) do
  local method, path, ctype, body = line:match("^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t(.*)$")
  local headers = {["Authorization"] = "Bearer %(token)s"}
  if ctype ~= "" then headers["Content-Type"] = ctype end
  if body == "" then body = nil end
  requests[i] = wrk.format(method, path, headers, body)
end
local counter = 0
request = function()
  counter = counter + 1
  return requests[(counter - 1) %% #requests + 1]
end
"""


def wrk_load(port: int, token: str, requests: list[Request], *, seconds: float, connections: int) -> Load:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "requests.tsv"
        with data.open("w", encoding="utf-8") as f:
            for r in requests:
                body = (r.body or b"").decode()
                if "\t" in body or "\n" in body or "\t" in r.path:
                    raise ValueError("wrk request lines may not hold tabs or newlines")
                f.write(f"{r.method}\t{r.path}\t{r.content_type}\t{body}\n")
        script = Path(tmp) / "mix.lua"
        script.write_text(_WRK_SCRIPT % {"data": data, "token": token})
        threads = min(2, connections)
        result = subprocess.run(
            [
                wrk_path() or "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "--timeout",
                "30s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
        )
    if result.returncode:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr[-2000:]}")
    return parse_wrk(result.stdout, connections)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str, connections: int) -> Load:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if not total:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    unexpected = int(non_2xx[1]) if non_2xx else 0
    if socket_errors:
        unexpected += sum(int(n) for n in socket_errors.groups())
    latency = {
        f"p{p}": _ms(v, u) for p, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)", output, re.M)
    }
    return Load(
        "wrk",
        int(total[1]),
        _ms(total[2], total[3]) / 1000,
        unexpected,
        connections,
        latency,
    )


def _python_worker(port: int, token: str, requests: list[Request], start: float, stop: float, out) -> None:
    client = HttpClient(port, token)
    done = unexpected = 0
    i = 0
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        request = requests[i % len(requests)]
        i += 1
        try:
            status, _, _ = client.send(request)
        except (http.client.HTTPException, OSError):
            unexpected += 1
            continue
        done += 1
        unexpected += status != request.expect
    out.put((done, unexpected))


def python_load(port: int, token: str, requests: list[Request], *, seconds: float, connections: int) -> Load:
    """``connections`` processes, each sending the mix back to back for ``seconds``."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start = time.time() + 0.5  # every process is running before the clock starts
    stop = start + seconds
    processes = [
        context.Process(
            target=_python_worker, args=(port, token, requests[i::connections] or requests, start, stop, out)
        )
        for i in range(connections)
    ]
    for p in processes:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in processes]
    for p in processes:
        p.join(timeout=10)
    return Load("python", sum(d for d, _ in results), seconds, sum(u for _, u in results), connections)
