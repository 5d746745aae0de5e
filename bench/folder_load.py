"""Load on the online folder: 50 concurrent signed-in clients fetching
``/api/flows`` for 30 s.

    python -m bench.folder_load [--clients 50] [--seconds 30]

The picture is the tests' fixed federation (``tests.picture_data``: four
members, twelve weeks, the demo's reference data). The folder runs as
``corredor serve`` in its own process on a free loopback port; each client
signs in through the form (CSRF token and all) as one of four users of
different audiences, then fetches ``/api/flows`` in a loop on a keep-alive
connection. Latency is from sending the request to the last byte read.
The result goes into its section of bench/RESULTS.md and bench/folder.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BEGIN, END = "<!-- folder-load -->", "<!-- /folder-load -->"
PASSWORD = "bench password for the folder"
USERS = {"bench-ts": "TS", "bench-pan": "PAN", "bench-iom": "IOM", "bench-cri": "CRI"}
TARGET_P99_MS = 200.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _client(
    base: str,
    name: str,
    gate: asyncio.Semaphore,
    ready: asyncio.Event,
    signed_in: list[int],
    clients: int,
    seconds: float,
    window: list[float],
    lat: list[float],
    errors: list[str],
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:
        async with gate:  # Argon2 is slow on purpose: a few sign-ins at a time
            form = await c.get("/signin")
            token = re.search(r"name='csrf' value='([^']+)'", form.text)
            assert token, form.text[:200]
            signed = await c.post(
                "/signin", data={"csrf": token.group(1), "username": name, "password": PASSWORD}
            )
            assert signed.status_code == 303, signed.status_code
        signed_in.append(1)
        if len(signed_in) == clients:
            window.extend([time.monotonic(), seconds])
            ready.set()
        await ready.wait()
        until = window[0] + window[1]
        # The measured loop speaks HTTP/1.1 on one keep-alive connection itself: a
        # load generator cheap enough not to be what is measured on a small machine.
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        host, port = base.removeprefix("http://").split(":")
        request = (
            f"GET /api/flows HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
            "Accept: application/json\r\n\r\n"
        ).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < until:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                found = re.search(rb"(?i)content-length: *(\d+)", head)
                if found is None:
                    raise RuntimeError(f"a response without Content-Length: {head[:80]!r}")
                length = int(found.group(1))
                body = await reader.readexactly(length)
                lat.append((time.perf_counter() - t0) * 1000)
                if status != b"200" or not body.startswith(b"{"):
                    errors.append(f"{status.decode()} {body[:60]!r}")
        finally:
            writer.close()


async def _load(base: str, clients: int, seconds: float, pid: int) -> dict[str, Any]:
    lat: list[float] = []
    errors: list[str] = []
    names = list(USERS)
    gate = asyncio.Semaphore(4)
    ready = asyncio.Event()
    signed_in: list[int] = []
    window: list[float] = []  # [start, seconds]: the clock starts once all are signed in

    async def one(i: int) -> None:
        await _client(
            base,
            names[i % len(names)],
            gate,
            ready,
            signed_in,
            clients,
            seconds,
            window,
            lat,
            errors,
        )

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    await ready.wait()
    cpu0, load0 = _cpu_s(pid), os.getloadavg()[0]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - window[0]
    server_cpu = _cpu_s(pid) - cpu0
    load1 = os.getloadavg()[0]
    q = statistics.quantiles(lat, n=100)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(lat),
        "requests_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(statistics.median(lat), 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(max(lat), 1),
        "errors": len(errors),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(1, len(lat)), 2),
        "server_cpu_share": round(server_cpu / elapsed, 2),
        "load_average_1m": f"{load0:.1f} -> {load1:.1f}",
        "target_p99_ms": TARGET_P99_MS,
        "met": q[98] < TARGET_P99_MS and not errors,
    }


def _write(result: dict[str, Any], machine: dict[str, Any]) -> None:
    from bench.sections import write_section

    (HERE / "folder.json").write_text(
        json.dumps({"folder_load": result, "machine": machine}, indent=2) + "\n"
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    section = (
        f"## Online folder: {result['clients']} signed-in clients on /api/flows\n\n"
        f"Written by `python -m bench.folder_load` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `corredor serve` in its own "
        "process on loopback, the tests' fixed federation, each client signed in through the "
        "form as one of four audiences (TS, PAN, IOM, CRI) and fetching `/api/flows` on a "
        "keep-alive connection; latency from request to last byte. Clients and server share "
        f"the machine's {machine.get('cores', '?')} cores with whatever else runs on it "
        "(`load_average_1m`); `server_cpu_ms_per_request` is the server process's own CPU "
        "time per answered request.\n\n"
        f"| measure | value |\n| --- | --- |\n{rows}\n"
    )
    write_section(BEGIN, END, section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from bench.machine import describe
    from node.folder.accounts import FolderDB
    from tests.picture_data import build_picture

    with tempfile.TemporaryDirectory() as tmp:
        agg = build_picture(Path(tmp))
        with FolderDB(agg.path / "folder.db") as db:
            for name, audience in USERS.items():
                db.add_user(name, audience, PASSWORD)
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "--home",
                str(agg.path),
                "serve",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("the folder did not start")
                time.sleep(0.1)
            result = asyncio.run(_load(base, args.clients, args.seconds, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    machine = describe()
    _write(result, machine)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
