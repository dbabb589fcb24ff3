"""Run method cells in an isolated worker process whose time limit is enforced from outside.

The parent starts ``python -m experiments.worker`` with pipes on stdin/stdout and talks to it
in length-prefixed pickle frames (parent and child are the same program). A frame carries the
task as :class:`experiments.records.Task` JSON (and the instance bytes when the worker asks
for them); the answer carries a :class:`experiments.records.TaskResult` as JSON. Both are
versioned and checked key by key when read, so no untyped dict crosses the pipe. The worker:

* imports :mod:`heuristics` and :mod:`formulations` (and any plug-in modules named on its
  command line, so out-of-tree methods run too), then answers ``{"op": "ready"}``;
* runs every task with :func:`pipecert.runner.run_method` (:func:`execute_task`);
* sets an address-space limit with :func:`resource.setrlimit` (``--memory-mb``), so a method
  that runs out of memory raises :class:`MemoryError` inside the graded ``run`` and becomes a
  recorded error instead of taking the machine down;
* moves its own stdout to stderr (solver chatter never corrupts the protocol) and writes
  stderr to a log file chosen by the parent;
* caches the last few instances it was sent (by key) and a per-instance
  :attr:`SolveContext.cache`, so node bounds and similar per-graph work is reused across k;
* exits when its parent dies (stdin EOF, or a changed parent pid).

The parent (:class:`WorkerProcess`) kills the child with SIGKILL once a task exceeds its time
limit plus a grace period, and starts a fresh one.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from experiments.records import Task, TaskResult
from pipecert.registry import Role

__all__ = ["WorkerProcess", "WorkerDied", "execute_task", "main"]

_HEADER = struct.Struct(">Q")
_CACHE_INSTANCES = 4


class WorkerDied(RuntimeError):
    """The worker process exited (crash, kill, out of memory) before answering."""


def _write_frame(fh: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(data)) + data)
    fh.flush()


def _read_exact(fh: IO[bytes], n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = fh.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _read_frame(fh: IO[bytes]) -> Any:
    head = _read_exact(fh, _HEADER.size)
    if head is None:
        return None
    data = _read_exact(fh, _HEADER.unpack(head)[0])
    if data is None:
        return None
    return pickle.loads(data)


# ---------------------------------------------------------------------------- in the worker
def execute_task(task: Task, instance: Any, cache: dict[str, Any] | None = None) -> TaskResult:
    """Run one task in this process with :func:`pipecert.runner.run_method` (the graded
    ``Heuristic.run``/``Formulation.run``).

    Parameters
    ----------
    task : Task
        Role, spec, k, seed, time limit, threads and the :class:`TaskContext`.
    instance : Instance
    cache : dict, optional
        The per-instance scratch space passed as :attr:`SolveContext.cache`.

    Returns
    -------
    TaskResult
        The graded outcome (``stats`` and ``log`` made JSON-safe, the partition declared
        for ``task.k`` stages), the task's wall time and start time. A bad spec or a
        method error is an ``error`` outcome (unless ``task.raise_errors``).
    """
    from pipecert.results import Budget, jsonable
    from pipecert.runner import run_method

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    context = task.context.solve_context(task.k, cache)
    tl = task.time_limit_s
    budget = Budget(time_limit_s=math.inf if tl is None else float(tl), threads=task.threads)
    try:
        out = run_method(task.spec, instance, task.k, role=task.role, context=context,
                         budget=budget, seed=task.seed, raise_errors=task.raise_errors)
    except Exception as exc:  # a bad spec, or raise_errors
        if task.raise_errors:
            raise
        elapsed = time.perf_counter() - t0
        res = TaskResult.failure(
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}",
            role=task.role, method=task.spec, elapsed=elapsed)
        return replace(res, started_at=started_at)
    out = replace(out, stats=jsonable(dict(out.stats)),
                  log=tuple(tuple(x) for x in jsonable([list(x) for x in out.log])))
    return TaskResult(out, time.perf_counter() - t0, started_at)


def _set_memory_limit(mb: float | None) -> None:
    if not mb:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    limit = int(mb * 1024 * 1024)
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):  # pragma: no cover
        pass


def _watch_parent(ppid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != ppid:
            os._exit(3)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m experiments.worker`` (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m experiments.worker")
    ap.add_argument("--memory-mb", type=float, default=None)
    ap.add_argument("--plugin", action="append", default=[])
    ap.add_argument("--warmup", action="append", default=[], metavar="ROLE:SPEC")
    args = ap.parse_args(argv)
    proto_out = os.fdopen(os.dup(1), "wb")
    proto_in = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)  # anything printed goes to the log, never into the protocol
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    import importlib

    import formulations  # noqa: F401  (registers every bound)
    import heuristics  # noqa: F401  (registers every heuristic)

    for mod in args.plugin:
        importlib.import_module(mod)
    _set_memory_limit(args.memory_mb)
    _warm_up(args.warmup)
    from experiments._serialize import instance_from_bytes
    from pipecert.memo import Memo

    # the last few instances, each with its SolveContext.cache (least recently used first out)
    instances: Memo[str, tuple[Any, dict[str, Any]]] = Memo("experiments.worker.instances",
                                                            _CACHE_INSTANCES)
    _write_frame(proto_out, {"op": "ready", "pid": os.getpid()})
    while True:
        msg = _read_frame(proto_in)
        if msg is None or msg.get("op") == "exit":
            return 0
        key = msg["instance_key"]
        held = instances.get(key)
        if held is None:
            blob = msg.get("instance_blob")
            if blob is None:
                _write_frame(proto_out, {"op": "need_instance", "instance_key": key})
                continue
            try:
                held = instances.put(key, (instance_from_bytes(blob), {}))
            except MemoryError:
                _write_frame(proto_out, {"op": "result", "result": _error_result(
                    msg["task"], "MemoryError while loading the instance")})
                continue
        try:
            res = execute_task(Task.from_json(msg["task"]), held[0], held[1]).to_json()
        except MemoryError:
            res = _error_result(msg["task"], "MemoryError (worker memory limit)")
        except BaseException as exc:  # noqa: BLE001 - report anything, keep serving
            res = _error_result(msg["task"], f"{type(exc).__name__}: {exc}\n"
                                f"{traceback.format_exc(limit=-3)}")
        _write_frame(proto_out, {"op": "result", "result": res})


#: Time limit of each warm-up run (seconds).
_WARM_S = 0.2


def _warm_up(items: list[str]) -> None:
    """Run each method once on tiny graphs (k = 2 and 3) before reporting ready.

    Methods compiled just in time (numba) compile on their first call; on a fresh checkout
    that can take longer than a short time limit, and a killed worker would compile again.
    Compiling here, before the first timed run, keeps compile time out of every run's time
    (and numba's on-disk cache makes later workers start fast). Failures are ignored: the
    real run reports them.
    """
    if not items:
        return
    from pipecert.results import Budget
    from pipecert.runner import run_method
    from pipecert.testing import warmup_instances

    todo = []
    for item in items:
        role, _, spec = item.partition(":")
        todo.append((Role.parse(role), spec))
    for tiny in warmup_instances():
        for role, spec in todo:
            for kk in (2, 3):
                try:
                    run_method(spec, tiny, kk, role=role, budget=Budget(_WARM_S), seed=0)
                except Exception:  # noqa: S112 - the timed run reports real failures
                    continue


def _error_result(task_json: str, msg: str) -> str:
    """The JSON of an ``error`` result of the task sent as ``task_json``."""
    try:
        task = Task.from_json(task_json)
        role, method = task.role, task.spec
    except (ValueError, TypeError, KeyError):
        role, method = Role.HEURISTIC, "?"
    return TaskResult.failure(msg, role=role, method=method).to_json()


# ---------------------------------------------------------------------------- in the parent
class WorkerProcess:
    """The parent's handle on one worker process.

    Parameters
    ----------
    memory_limit_mb : float or None
        Address-space limit of the worker (None: no limit).
    plugins : list of str
        Extra modules the worker imports (out-of-tree methods register themselves).
    threads : int
        Threads a method may use (sets ``OMP_NUM_THREADS`` and friends in the worker).
    log_path : Path or None
        File receiving the worker's stdout/stderr (appended); None discards them.
    warmup : list of str
        ``role:spec`` methods the worker runs once on a tiny graph before it is ready
        (just-in-time compilation outside any timed run).
    """

    def __init__(self, *, memory_limit_mb: float | None = None, plugins: list[str] | None = None,
                 threads: int = 1, log_path: str | Path | None = None,
                 warmup: list[str] | None = None) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.plugins = list(plugins or [])
        self.warmup = list(warmup or [])
        self.started_at = 0.0
        self.threads = int(threads)
        self.log_path = None if log_path is None else Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = False
        self.task: Any = None  # what the parent is waiting for (set by the caller)
        self.deadline = math.inf
        self.sent_at = 0.0

    # -- lifecycle
    def start(self) -> None:
        """Start the process (does not wait for it to be ready)."""
        cmd = [sys.executable, "-m", "experiments.worker"]
        if self.memory_limit_mb:
            cmd += ["--memory-mb", str(self.memory_limit_mb)]
        for p in self.plugins:
            cmd += ["--plugin", p]
        for w in self.warmup:
            cmd += ["--warmup", w]
        env = dict(os.environ)
        t = str(self.threads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env[var] = t
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(
            [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            err: Any = self.log_path.open("ab")
        else:
            err = subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=err, env=env, start_new_session=True)
        if self.log_path is not None:
            err.close()
        self.ready = False
        self.started_at = time.monotonic()

    def fileno(self) -> int:
        """The pipe to select on for the worker's answers."""
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker (and anything it started) and reap it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        for fh in (self.proc.stdin, self.proc.stdout):
            try:
                if fh is not None:
                    fh.close()
            except OSError:
                pass
        self.proc = None
        self.ready = False
        self.task = None

    def close(self) -> None:
        """Ask the worker to exit, then kill it if it does not."""
        if self.proc is None:
            return
        try:
            assert self.proc.stdin is not None
            _write_frame(self.proc.stdin, {"op": "exit"})
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired, AssertionError):
            pass
        self.kill()

    def exit_description(self) -> str:
        """How the process ended (exit code or signal), plus the tail of its log."""
        if self.proc is None:
            return "worker gone"
        code = self.proc.poll()
        if code is None:
            what = "worker stopped answering"
        elif code < 0:
            what = f"worker killed by signal {signal.Signals(-code).name}"
        else:
            what = f"worker exited with code {code}"
        tail = self.log_tail()
        return what + (f"; log: {tail}" if tail else "")

    def log_tail(self, n: int = 3) -> str:
        """The last lines of the worker's log, joined."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in lines[-n:])

    # -- protocol
    def send(self, msg: Any) -> None:
        """Send one frame (raises :class:`WorkerDied` if the pipe is closed)."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            _write_frame(self.proc.stdin, msg)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(self.exit_description()) from exc

    def recv(self) -> Any:
        """Read one frame (blocking); :class:`WorkerDied` on EOF."""
        assert self.proc is not None and self.proc.stdout is not None
        msg = _read_frame(self.proc.stdout)
        if msg is None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise WorkerDied(self.exit_description())
        return msg

    def wait_ready(self, timeout: float = 900.0) -> None:
        """Block until the worker reported ready (imports and warm-up done)."""
        if self.ready:
            return
        assert self.proc is not None
        r, _, _ = select.select([self.fileno()], [], [], timeout)
        if not r:
            self.kill()
            raise WorkerDied(f"worker not ready after {timeout:.0f} s")
        msg = self.recv()
        if msg.get("op") != "ready":
            raise WorkerDied(f"unexpected first message {msg!r}")
        self.ready = True

    def call(self, task: Task, instance_key: str, instance_blob: bytes,
             kill_after_s: float) -> TaskResult:
        """Run ``task`` and return its result; kill the worker after ``kill_after_s``.

        A worker that died or was killed is restarted on the next call. Returns an
        ``error`` result (never raises) when the worker dies or overruns.
        """
        if not self.alive():
            self.start()
        self.wait_ready()
        t0 = time.monotonic()
        deadline = t0 + kill_after_s
        msg = {"task": task.to_json(), "instance_key": instance_key}
        try:
            self.send(msg)
            while True:
                left = deadline - time.monotonic()
                r, _, _ = select.select([self.fileno()], [], [], max(0.0, left))
                if not r:
                    self.kill()
                    return timeout_result(task, kill_after_s, time.monotonic() - t0)
                ans = self.recv()
                if ans.get("op") == "need_instance":
                    self.send({**msg, "instance_blob": instance_blob})
                    continue
                return TaskResult.from_json(ans["result"])
        except WorkerDied as exc:
            self.kill()
            return died_result(task, str(exc), time.monotonic() - t0)


def timeout_result(task: Task, kill_after_s: float, elapsed: float) -> TaskResult:
    """The recorded result of a run killed for overrunning its time limit."""
    return TaskResult.failure(f"killed: no answer {kill_after_s:.1f} s after start "
                              "(time limit + grace exceeded)",
                              role=task.role, method=task.spec, elapsed=elapsed)


def died_result(task: Task, description: str, elapsed: float) -> TaskResult:
    """The recorded result of a run whose worker died (crash or out of memory)."""
    return TaskResult.failure(f"worker died: {description}", role=task.role, method=task.spec,
                              elapsed=elapsed)


if __name__ == "__main__":
    sys.exit(main())
