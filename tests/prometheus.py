"""A real Prometheus (Debian's /usr/bin/prometheus) scraping an exporter the tests control.

The exporter serves the Prometheus text format from a thread: gauges the test sets, and request counters
that grow at every scrape by the traffic the test asks for (so `rate()` ratios are real). Prometheus
scrapes it every second from a temporary config and data directory, on a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BINARY = os.environ.get("WARROOM_TEST_PROMETHEUS", "/usr/bin/prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    """Metrics the test sets; each scrape adds `ok_per_scrape` and `errors_per_scrape` requests."""

    def __init__(self) -> None:
        self.gauges: dict[str, float] = {}
        self.ok_per_scrape = 1000
        self.errors_per_scrape = 0
        self.requests = {"200": 0, "500": 0}
        self.scrapes = 0
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.scrape(dict(self.headers.items())).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def scrape(self, headers: dict[str, str]) -> str:
        with self._lock:
            self.scrapes += 1
            self.headers.append(headers)
            self.requests["200"] += self.ok_per_scrape
            self.requests["500"] += self.errors_per_scrape
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{code="{code}"}} {n}' for code, n in self.requests.items()]
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {value}"]
            return "\n".join(lines) + "\n"

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = value


class Prometheus:
    """The running server: its URL, and a way to wait until a query says what the test set."""

    def __init__(self, url: str, exporter: Exporter, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.exporter = exporter
        self.process = process
        self.log = log

    def query(self, promql: str) -> dict[str, Any]:
        data = urllib.parse.urlencode({"query": promql}).encode()
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=3) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            try:
                return dict(json.loads(exc.read()))
            except ValueError:  # "Service Unavailable" while it starts
                return {}

    def value(self, promql: str) -> float | None:
        result = self.query(promql).get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def wait_for(self, promql: str, condition: Callable[[float], bool], within: float = 15.0) -> float:
        """Wait until `promql` has one value for which `condition` holds (Prometheus scraped the change)."""
        deadline = time.monotonic() + within
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.value(promql)
            if last is not None and condition(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"{promql} did not come to the expected value within {within}s (last {last})")


def _start(exporter: Exporter, folder: Path) -> Prometheus:
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
    )
    log = folder / "prometheus.log"
    process = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}", exporter, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if server.value('up{job="app"}') == 1.0 and server.value("sum(http_requests_total)") is not None:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"prometheus did not scrape the exporter within 30s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def prometheus() -> Iterator[Prometheus]:
    """A real Prometheus scraping the test's exporter every second (skips, saying so, without the binary)."""
    if not Path(BINARY).exists() or shutil.which(BINARY) is None:
        pytest.skip(f"{BINARY} is not installed (Debian package `prometheus`; .ci/run installs it)")
    exporter = Exporter()
    exporter.thread.start()
    folder = Path(tempfile.mkdtemp(prefix="warroom-prometheus-"))
    server = _start(exporter, folder)
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
        exporter.server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
