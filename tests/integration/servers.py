"""Start real servers in subprocesses on 127.0.0.1 and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def python_path() -> str:
    """This checkout first, then whatever PYTHONPATH the tests run with (a run against another
    Django puts that Django there, and the servers must import it too)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def run_python(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python ARGS` from this checkout in a clean environment (no OTEL_* or test variables),
    output captured as text; the caller checks the return code."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={"PYTHONPATH": python_path(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(
    args: Sequence[str],
    port: int | Path,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[subprocess.Popen[str]]:
    """Run `python -m ARGS` until it accepts connections on 127.0.0.1:`port` (or on the unix
    socket at `port`, a path); SIGTERM it at the end."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = python_path()
    environment["OTEL_BRIDGE_EXPORTERS"] = "none"  # tests that want a view say so
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_accepting(process, port, timeout)
        yield process
    finally:
        try:
            end(process, timeout=20)  # also closes the pipes
        except ValueError:
            pass  # stop() already collected the output


def start_writing_to(
    directory: Path, args: Sequence[str], env: dict[str, str], **popen: Any
) -> tuple[subprocess.Popen[str], Path, Path]:
    """Start `args` with its output written, unbuffered, to `directory`/stdout and
    `directory`/stderr, to be read while it runs; the process and the two files."""
    stdout, stderr = directory / "stdout", directory / "stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            args, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=err, text=True, **popen
        )
    return process, stdout, stderr


def end(
    process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 20.0
) -> tuple[str, str]:
    """Send `sig` to `process` (if it still runs) and collect its output; kill it if it has
    not exited within `timeout` seconds."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            process.send_signal(sig)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def wait_for(check: Any, timeout: float = 15.0) -> bool:
    """Poll `check()` until it is true or `timeout` seconds passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def lines_written(path: Path, count: int) -> Callable[[], bool]:
    """A check for `wait_for`: `path` exists and holds at least `count` lines."""
    return lambda: path.exists() and len(path.read_text().splitlines()) >= count


def every_view(pinba_port: int, events_file: Path) -> dict[str, str]:
    """The environment that turns every view on: expvar, Pinba to 127.0.0.1:`pinba_port`,
    wide events to `events_file`."""
    return {
        "OTEL_BRIDGE_EXPORTERS": "expvar,pinba,wide_events",
        "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba_port}",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events_file}",
    }


def get_at_once(base: str, paths: Sequence[str], at_once: int) -> list[httpx.Response]:
    """GET each of `paths` from `base`, `at_once` at a time (threads sharing one client's
    connection pool, as a busy site's visitors come); the responses, in the paths' order."""
    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(at_once) as pool:
        return list(pool.map(client.get, paths))


@contextmanager
def only_worker(pid: int, workers: Iterable[int]) -> Iterator[None]:
    """Within the block every worker but `pid` is stopped (SIGSTOP), so a new connection is
    `pid`'s to accept, whatever the worker kind. Which worker accepts is otherwise the kernel's
    choice, and an idle server may give every connection to the one that served the last."""
    others = [worker for worker in workers if worker != pid]
    for worker in others:
        os.kill(worker, signal.SIGSTOP)
    try:
        yield
    finally:
        for worker in others:
            os.kill(worker, signal.SIGCONT)


def worker_pids(master: subprocess.Popen[str], count: int) -> list[int]:
    """The pids of the `count` processes `master` forked (a gunicorn master's workers), once
    it has forked them all."""
    import psutil

    found: list[int] = []

    def forked() -> bool:
        found[:] = [child.pid for child in psutil.Process(master.pid).children()]
        return len(found) == count

    assert wait_for(forked, 20), found
    return found


def get_from_each(base: str, paths: Sequence[str], workers: Sequence[int]) -> Counter[int]:
    """GET each of `paths` from `base` on a connection of its own, spread evenly over
    `workers` (each in turn the only one running); how many each worker answered, by the pid
    each answer ends with."""
    answered: Counter[int] = Counter()
    for index, path in enumerate(paths):
        with only_worker(workers[index * len(workers) // len(paths)], workers):
            response = httpx.get(base + path, headers={"connection": "close"}, timeout=10)
        answered[int(response.text.split()[-1])] += 1
    return answered


def wait_accepting(process: subprocess.Popen[str], port: int | Path, timeout: float) -> None:
    """Return once `port` accepts connections; raise if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            out, err = process.communicate()
            raise RuntimeError(f"{process.args!r} exited early:\n{out}\n{err}")
        try:
            connect(port).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts on {port}") from None
            time.sleep(0.05)


def connect(port: int | Path, timeout: float = 0.2) -> socket.socket:
    """A connection to 127.0.0.1:`port`, or to the unix socket at `port`."""
    if isinstance(port, Path):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        try:
            sock.connect(str(port))
        except OSError:
            sock.close()
            raise
        return sock
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the server and return its output once it has exited."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=30)


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes as they are (for requests an HTTP client would refuse to build)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def uvicorn(app: str, port: int, *extra: str) -> list[str]:
    """Arguments for `python -m` serving `app` with uvicorn on 127.0.0.1:`port`."""
    return [
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]


def gunicorn(app: str, port: int, *extra: str, hooks: bool = True) -> list[str]:
    """Arguments for `python -m` serving `app` with gunicorn on 127.0.0.1:`port`, with
    otel_bridge's server hooks unless `hooks` is false."""
    config = ["-c", "python:otel_bridge.gunicorn"] if hooks else []
    return [
        "gunicorn",
        app,
        *config,
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *extra,
    ]


NGINX_SITE = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        # Tests stand for a remote client with `X-Test-Client: ADDRESS`: nginx then takes
        # the connection as coming from ADDRESS ($remote_addr), as the realip module does
        # behind a load balancer, and forwards it as it forwards any client.
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Test-Client;
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Test-Client "";
            {forwarding}
        }}
    }}
}}
"""
# What nginx sends upstream in the usual production configurations.
FORWARDING = {
    "x-forwarded-for": "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "x-real-ip": "proxy_set_header X-Real-IP $remote_addr;",
    "forwarded": 'proxy_set_header Forwarded "for=$remote_addr;proto=$scheme";',
}


@contextmanager
def nginx(
    upstream: int | Path, directory: Path, forwarding: Sequence[str] = tuple(FORWARDING)
) -> Iterator[int]:
    """Debian's nginx on 127.0.0.1 (the port it yields), proxying to 127.0.0.1:`upstream`
    or to the unix socket at `upstream`, with the `forwarding` headers set."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    target = f"unix:{upstream}:" if isinstance(upstream, Path) else f"127.0.0.1:{upstream}"
    config = directory / "nginx.conf"
    config.write_text(
        NGINX_SITE.format(
            dir=directory,
            port=port,
            upstream=target,
            # As root, nginx's workers would switch to nobody, who cannot reach the socket.
            user="user root;" if os.geteuid() == 0 else "",
            forwarding="\n            ".join(FORWARDING[name] for name in forwarding),
        )
    )
    binary = "/usr/sbin/nginx"
    assert os.path.exists(binary), "nginx is missing: scripts/system-deps installs it"
    process = subprocess.Popen(
        [
            binary,
            "-e",
            str(directory / "error.log"),
            "-p",
            str(directory),
            "-c",
            str(config),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_accepting(process, port, 10)
        yield port
    finally:
        end(process, signal.SIGQUIT, timeout=10)
