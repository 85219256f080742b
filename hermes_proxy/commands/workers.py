"""``hermes-proxy serve --workers N``: N proxy processes on one port, one per core.

The parent reserves the port (``SO_REUSEPORT``: ``--port 0`` resolves once, to one port for all), starts N workers
(``hermes-proxy serve --worker K``, the same config), prints the "listening" line once every worker is bound, and
then only supervises: SIGTERM/SIGINT go to every worker (each lets its running streams finish, then settles and
closes), SIGHUP too (each reloads the config), and a worker that dies unexpectedly is started again. The kernel
spreads new connections over the workers' sockets.

What the workers share is what replicas share: the ledger (a SQLite file or PostgreSQL: budgets are held across
processes exactly as across hosts), the rate limits (``[rate_limits] url``: a SQLite file, or Redis; in-process
limits would be per worker, so several workers without one are refused), the response cache and the alert outbox (in
the ledger's database). ``/metrics`` is aggregated over the workers (prometheus_client's multiprocess mode, in a directory the
parent owns): a scrape reaching any worker sees the totals.

Workers get SIGTERM if the parent dies (Linux ``PR_SET_PDEATHSIG``), so none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hermes_proxy.config import Config
from hermes_proxy.errors import HermesError

READY = "hermes-proxy-worker-ready"
#: a worker that dies is started again after this long (a crash loop costs at most one start a second)
RESTART_DELAY_S = 1.0
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class WorkerCount:
    count: int
    #: what set it: ``"auto"``, ``"--workers"`` or ``"server.workers"``
    source: str = "server.workers"
    #: why ``auto`` came to one process on a host with several cores (said in the start-up report and check-config)
    why_one: str | None = None


def workers_wanted(asked: str | None, config: Config) -> WorkerCount:
    """``--workers``: a number, or ``auto`` (the cores this process may use, or one where several would not share the
    ledger or the rate limits); the config's ``server.workers`` (``auto`` by default) when the flag is not given."""
    value = asked if asked is not None else str(config.server.workers)
    if value == "auto":  # as many as there are cores, where several are safe; else one, and why
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        reason = why_one_worker(config) if cores > 1 else None
        return WorkerCount(1 if reason is not None else max(1, cores), "auto", reason)
    try:
        count = int(value)
    except ValueError:
        raise HermesError(f"--workers must be a number or 'auto', got {value!r}") from None
    if not 1 <= count <= 256:
        raise HermesError(f"--workers must be between 1 and 256, got {count}")
    return WorkerCount(count, "--workers" if asked is not None else "server.workers")


def why_one_worker(config: Config) -> str | None:
    """What the workers could not share, if anything: then only one process may serve."""
    if config.ledger.url.startswith("memory://"):
        return ("the ledger is in memory (ledger.url = \"memory://\") and workers need one they share: a sqlite:/// "
                "file or PostgreSQL")
    limited = [t.name for t in config.teams if t.rate_limits is not None or t.key_rate_limits is not None]
    if limited and not config.rate_limits.url:
        teams = f"team {limited[0]} has" if len(limited) == 1 else f"teams {', '.join(limited)} have"
        return (f"{teams} rate limits, which without [rate_limits] url are counted per process (each worker would "
                "allow the full rate); set [rate_limits] url = \"sqlite:///<file>\" (the workers of this host) or "
                "\"redis://...\"")
    return None


def refuse_unsafe(config: Config, workers: int) -> None:
    """Several workers only where they share what must be shared."""
    reason = why_one_worker(config) if workers > 1 else None
    if reason is not None:
        raise HermesError(f"--workers {workers}: {reason}; or run one worker")


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with SO_REUSEPORT: it fixes the port (``0``: a free one) for
    the workers, which bind the same with SO_REUSEPORT. It receives no connections itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
    except OSError as exc:
        sock.close()
        raise HermesError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                          "(is another hermes-proxy running? choose another --port)") from None
    return sock


def die_with_parent() -> None:
    """In a worker: SIGTERM when the parent dies (Linux; elsewhere the parent's own shutdown stops the workers)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """The parent: starts the workers, relays their output, forwards signals, restarts a worker that died."""

    def __init__(self, argv: Sequence[str], workers: int, metrics_dir: Path) -> None:
        self._argv = list(argv)
        self._count = workers
        self._metrics_dir = metrics_dir
        self._procs: dict[int, subprocess.Popen[str]] = {}
        self._ready: set[int] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._changed = threading.Event()

    def _start(self, index: int) -> None:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir)}
        # a session of its own: a Ctrl+C in the terminal reaches the parent only, which stops the workers in order
        proc = subprocess.Popen([sys.executable, "-m", "hermes_proxy.cli", *self._argv, "--worker", str(index)],
                                stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
        with self._lock:
            self._procs[index] = proc
        threading.Thread(target=self._relay, args=(index, proc), daemon=True).start()

    def _relay(self, index: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == READY:
                with self._lock:
                    self._ready.add(index)
                self._changed.set()
            else:
                print(line, end="", flush=True)
        proc.wait()
        self._changed.set()

    def start_all(self) -> None:
        """Start every worker and wait until each is bound; raise when one exits first (its error is on stderr)."""
        for index in range(self._count):
            self._start(index)
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self._ready) < self._count:
            failed = [i for i, p in self._procs.items() if p.poll() is not None and i not in self._ready]
            if failed:
                self.stop()
                raise HermesError(f"worker {failed[0]} stopped while starting (exit {self._procs[failed[0]].returncode})")
            if time.monotonic() > deadline:
                self.stop()
                raise HermesError(f"the workers did not start within {START_TIMEOUT_S:g} s")
            self._changed.wait(0.2)
            self._changed.clear()

    def forward(self, signum: int) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def restart_dead(self) -> None:
        """Start again any worker that died. Called from the main thread only: Linux sends a worker its
        parent-death signal when the *thread* that started it ends."""
        for index, proc in list(self._procs.items()):
            if proc.poll() is not None and not self._stopping:
                print(f"hermes-proxy: worker {index} (pid {proc.pid}) exited with {proc.returncode}; "
                      "starting it again", file=sys.stderr, flush=True)
                _mark_dead(proc.pid, self._metrics_dir)
                time.sleep(RESTART_DELAY_S)
                if not self._stopping:
                    self._start(index)

    def stop(self) -> int:
        """SIGTERM to every worker, and wait for each (they finish their running requests first)."""
        self._stopping = True
        self._changed.set()
        self.forward(signal.SIGTERM)
        worst = 0
        for proc in list(self._procs.values()):
            code = proc.wait()
            _mark_dead(proc.pid, self._metrics_dir)
            if code not in (0, -signal.SIGTERM):
                worst = code
        return worst


def _mark_dead(pid: int, metrics_dir: Path) -> None:
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(metrics_dir))


def supervise(argv: Sequence[str], workers: int, sock: socket.socket, listening_line: str) -> int:
    """Run ``workers`` workers with ``argv`` (the serve arguments, the port fixed) until SIGTERM/SIGINT."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="hermes-proxy-metrics-"))
    supervisor = Supervisor(argv, workers, metrics_dir)
    stop = threading.Event()

    def on_stop(signum: int, frame: object) -> None:
        stop.set()

    def on_hup(signum: int, frame: object) -> None:
        supervisor.forward(signal.SIGHUP)

    previous = {s: signal.signal(s, on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGHUP, on_hup)
    try:
        supervisor.start_all()
        print(listening_line, flush=True)
        while not stop.wait(0.5):
            supervisor.restart_dead()
        return supervisor.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
