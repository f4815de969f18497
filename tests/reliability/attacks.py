"""Figures for docs/RELIABILITY.md's attack table: each attack against ``python -m server``
on loopback, with what a normal client sees meanwhile.

    .venv/bin/python -m tests.reliability.attacks --model build/test-models/<key> [--only NAME]

Every attack is bounded in connections, count and time, targets 127.0.0.1 only, and stops
by itself. It prints one line per attack: statuses, the normal client's latency, RSS.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from tests.reliability.conftest import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, model: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ROOT / "build" / f"attack-server-{self.port}.log", "wb")
        cmd = [sys.executable, "-m", "server", "--model", str(model), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.url, proc=self.proc)

    def vm(self) -> dict[str, int]:
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) // 1024
        return values

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def probe(url: str, seconds: float, path: str = "/embed") -> tuple[list[float], Counter[str]]:
    """A normal client for ``seconds``: one short query (or a GET of ``path``) at a time."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    end = time.monotonic() + seconds
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < end:
            start = time.perf_counter()
            try:
                if path == "/embed":
                    r = client.post(url + path, json={"inputs": "what is the refund policy?"})
                else:
                    r = client.get(url + path)
                outcomes[str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
    return latencies, outcomes


def summary(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    return f"p50 {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms over {len(ms)}"


def closed(sock: socket.socket) -> bool:
    """Whether the server has ended this connection: an end of stream (after a 408 or
    nothing) or a reset is waiting to be read; a silent open connection would block."""
    sock.setblocking(False)
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408")


@contextmanager
def background(target: Callable[[threading.Event], None], n: int) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=target, args=(stop,), daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(120)


def idle_connections(model: Path) -> str:
    server = Server(model)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2000)]
    latencies, outcomes = probe(server.url, 3)
    live = httpx.get(server.url + "/health/live").status_code
    time.sleep(6)
    gone = sum(closed(s) for s in socks)
    for s in socks:
        s.close()
    server.stop()
    return (
        f"2,000 idle connections: normal query {summary(latencies)} {dict(outcomes)}, /health/live {live}; "
        f"{gone} of 2,000 closed by the server within 9 s"
    )


def slowloris(model: Path) -> str:
    server = Server(model)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(500)]
    for s in socks:
        s.sendall(b"POST /embed HTTP/1.1\r\n")

    def drip(stop: threading.Event) -> None:
        while not stop.wait(1.0):
            for s in socks:
                try:
                    s.sendall(b"x")
                except OSError:
                    pass

    with background(drip, 1):
        latencies, outcomes = probe(server.url, 8)
    gone = sum(closed(s) for s in socks)
    for s in socks:
        s.close()
    server.stop()
    return (
        f"500 slowloris connections (1 byte/s): normal query {summary(latencies)} {dict(outcomes)}; "
        f"{gone} of 500 closed"
    )


def huge_inputs(model: Path) -> str:
    server = Server(model)
    big = {"inputs": ("word " * 420_000)[: 2 * 1024 * 1024 - 64]}
    statuses: Counter[int] = Counter()

    def sender(stop: threading.Event) -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                statuses[client.post(server.url + "/embed", json=big).status_code] += 1

    before = server.vm()["VmRSS"]
    with background(sender, 2):
        latencies, outcomes = probe(server.url, 10)
    vm = server.vm()
    server.stop()
    return (
        f"2 clients looping 2 MiB strings: normal query {summary(latencies)} {dict(outcomes)}; "
        f"big requests {dict(statuses)}; RSS {before} -> {vm['VmRSS']} MiB (peak {vm['VmHWM']})"
    )


def memory_burst(model: Path) -> str:
    server = Server(model, "--request-timeout", "600")
    httpx.post(server.url + "/embed", json={"inputs": "warm"}, timeout=60)
    before = server.vm()["VmRSS"]
    body = {"inputs": ("word " * 420_000)[: 2 * 1024 * 1024 - 64]}
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(
                httpx.post(server.url + "/embed", json=body, timeout=600).status_code
            )
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    vm = server.vm()
    server.stop()
    peak, after = vm["VmHWM"], vm["VmRSS"]
    return (
        f"4 x 2 MiB at once: {dict(Counter(statuses))}; RSS {before} MiB before, peak {peak}, after {after}"
    )


def mid_body_disconnects(model: Path) -> str:
    server = Server(model)
    head = (
        b"POST /embed HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    )
    start = time.monotonic()
    count = 0
    while time.monotonic() - start < 10:
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(head + b'{"inputs": ["')
        s.close()
        count += 1
    time.sleep(1)
    metrics = httpx.get(server.url + "/metrics").text
    lines = [line for line in metrics.splitlines() if line.startswith("embed_requests_total{")]
    server.stop()
    log = server.log.name
    log_lines = len(Path(log).read_text(errors="replace").splitlines())
    return f"{count} clients leaving mid-body in 10 s: {lines}; server log {log_lines} lines in all"


def headers(model: Path) -> str:
    server = Server(model)
    out = []
    for name, extra in [
        ("8 MB header", b"x-big: " + b"a" * 8_000_000 + b"\r\n"),
        ("100,000 headers", b"".join(b"x-h%d: v\r\n" % i for i in range(100_000))),
    ]:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        try:
            s.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n" + extra + b"\r\n")
        except OSError:
            pass
        try:
            answer = s.recv(200).split(b"\r\n", 1)[0].decode()
        except OSError as exc:
            answer = type(exc).__name__
        s.close()
        out.append(f"{name}: {answer}")
    live = httpx.get(server.url + "/health/live").status_code
    server.stop()
    return "; ".join(out) + f"; /health/live afterwards {live}"


def tokenize_flood(model: Path) -> str:
    server = Server(model)
    body = orjson.dumps({"inputs": [("tokenize me please " * 60)[:1130] for _ in range(256)]})
    statuses: Counter[int] = Counter()

    def sender(stop: threading.Event) -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                r = client.post(
                    server.url + "/tokenize", content=body, headers={"content-type": "application/json"}
                )
                statuses[r.status_code] += 1

    with background(sender, 4):
        latencies, outcomes = probe(server.url, 10, "/health/live")
    server.stop()
    return (
        f"4 clients looping {len(body) // 1024} KB /tokenize: /health/live {summary(latencies)} "
        f"{dict(outcomes)}; tokenize {dict(statuses)}"
    )


ATTACKS = {
    "idle": idle_connections,
    "slowloris": slowloris,
    "huge": huge_inputs,
    "memory": memory_burst,
    "disconnect": mid_body_disconnects,
    "headers": headers,
    "tokenize": tokenize_flood,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--only", choices=sorted(ATTACKS), action="append")
    args = parser.parse_args()
    for name in args.only or list(ATTACKS):
        print(f"{name}: {ATTACKS[name](args.model)}", flush=True)


if __name__ == "__main__":
    main()
