"""Warm sandboxes: start-up out of the critical path.

    with WarmPool(backend, slots=2) as pool:      # one per run; an `EpisodeRunner`
        episode = pool.run(EpisodeRequest(...))   # from up to `slots` threads at once

One slot per core. Each slot keeps one sandbox warm (started, imports done, emulator built for the
setting it last played, the policy's interpreter waiting), pinned to the slot's core. `run` takes
the slot's warm sandbox, and at once has the next one warmed in the background, so it is ready
when this episode ends. A sandbox plays one episode and is destroyed: nothing of one program
reaches the next. A warm sandbox that died while idle is noticed before it is handed out and
replaced. Idle warm sandboxes block on a read: they cost no CPU.
"""

from __future__ import annotations

import queue
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from pydantic import ValidationError

from sandbox.backends.base import (
    Backend,
    Prepare,
    SandboxUnavailable,
    WarmSandbox,
    WorkerOutcome,
)
from sandbox.episodes import EpisodeRequest, RunnerClosed, usable_cpus
from sandbox.results import EpisodeResult, Status
from sandbox.runtime.protocol import EpisodeLimits, EpisodeSpec
from sandbox.settings import Limits

READY_SECONDS = 120.0  # a loaded machine starting a sandbox
STARTUP_ALLOWANCE_SECONDS = 60.0  # beyond the episode's own wall budget
UNAVAILABLE_SECONDS = (
    60.0  # how long a backend may be unable to start a sandbox, then it's an error
)


@dataclass
class _Slot:
    cpu: int | None
    warm: WarmSandbox | None = None
    warming: threading.Event = field(default_factory=threading.Event)


@dataclass
class PoolStats:
    """What the pool did: how often a warm sandbox was ready when asked for, and how long
    episodes waited for one (a slot that waits is idle however busy the scheduler thinks it)."""

    served_warm: int = 0
    served_cold: int = 0
    replaced_dead: int = 0
    warm_failures: int = 0
    unavailable_retries: int = 0
    waited_seconds: float = 0.0


class WarmPool(AbstractContextManager["WarmPool"]):
    """An `EpisodeRunner` over a backend's warm sandboxes (see the module docstring)."""

    def __init__(
        self, backend: Backend, slots: int | None = None, *, owns_backend: bool = True
    ) -> None:
        cpus = usable_cpus()
        self.backend = backend
        self._owns_backend = owns_backend
        count = max(1, slots or len(cpus))
        self._slots = [_Slot(cpus[index % len(cpus)]) for index in range(count)]
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._to_warm: queue.SimpleQueue[tuple[int, Prepare | None] | None] = queue.SimpleQueue()
        self._active: set[WarmSandbox] = set()
        self._seeds: dict[tuple[str, int, float], list[int]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.stats = PoolStats()
        for index, slot in enumerate(self._slots):
            self._free.put(index)
            slot.warming.set()
        self._to_reap: queue.Queue[WarmSandbox | None] = queue.Queue()
        self._warmer = threading.Thread(target=self._warm_loop, name="sandbox-warmer", daemon=True)
        self._reaper = threading.Thread(target=self._reap_loop, name="sandbox-reaper", daemon=True)
        self._warmer.start()
        self._reaper.start()

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def slots(self) -> int:
        return len(self._slots)

    def prewarm(self, prepare: Prepare | None = None) -> None:
        """Warm every idle slot now (e.g. with the run's game), instead of on first use."""
        for index, slot in enumerate(self._slots):
            with self._lock:
                if slot.warm is None and slot.warming.is_set():
                    slot.warming.clear()
                    self._to_warm.put((index, prepare))

    def run(self, request: EpisodeRequest) -> EpisodeResult:
        if self._closed:
            raise RunnerClosed("the sandbox pool is closed")
        index = self._free.get()
        sandbox: WarmSandbox | None = None
        try:
            if self._closed:
                raise RunnerClosed("the sandbox pool is closed")
            prepare = self._remember(request)
            sandbox = self._take(index, prepare)
            self._warm_next(index, prepare)
            spec = episode_spec(request)
            wall = request.limits.episode_wall_seconds + STARTUP_ALLOWANCE_SECONDS
            try:
                outcome = sandbox.run(spec.to_json(), wall)
            except (OSError, SandboxUnavailable):
                if self._closed:  # close() destroyed the sandbox under this episode
                    raise RunnerClosed("the sandbox pool was closed during the episode") from None
                raise
            if self._closed:
                raise RunnerClosed("the sandbox pool was closed during the episode")
            return episode_from_outcome(outcome, request.seed, request.limits)
        finally:
            if sandbox is not None:
                self._to_reap.put(sandbox)  # teardown off the critical path
            self._free.put(index)

    def _remember(self, request: EpisodeRequest) -> Prepare:
        """What to build ahead for this request's setting: the emulator, and resets for every
        seed asked for under it so far."""
        env = request.env
        setting = (request.game, env.frameskip, env.repeat_action_probability)
        with self._lock:
            seeds = self._seeds.setdefault(setting, [])
            if request.seed not in seeds:
                seeds.append(request.seed)
            return Prepare(*setting, seeds=tuple(seeds))

    def _take(self, index: int, prepare: Prepare) -> WarmSandbox:
        """The slot's warm sandbox if it is alive, else one started now (a warm-up that failed
        is tried once more here, so that its error reaches the caller)."""
        slot = self._slots[index]
        asked = time.monotonic()
        slot.warming.wait()
        with self._lock:
            sandbox, slot.warm = slot.warm, None
        if sandbox is not None and sandbox.alive():
            self.stats.served_warm += 1
            self.stats.waited_seconds += time.monotonic() - asked
        else:
            if sandbox is not None:  # died while idle: never handed out
                sandbox.destroy()
                self.stats.replaced_dead += 1
            self.stats.served_cold += 1
            sandbox = self._start_riding_out_outages(slot.cpu, prepare)
            # One that never gets ready still plays: its episode is then reported as the
            # sandbox's crash, with the harness's stderr.
            sandbox.wait_ready(READY_SECONDS)
            self.stats.waited_seconds += time.monotonic() - asked
        with self._lock:
            self._active.add(sandbox)
            closed = self._closed
        if closed:
            self._to_reap.put(sandbox)
            raise RunnerClosed("the sandbox pool is closed")
        return sandbox

    def _start_riding_out_outages(self, cpu: int | None, prepare: Prepare) -> WarmSandbox:
        """Start a sandbox now; while the backend says it cannot (a Docker engine restarting,
        the machine out of uid pairs for a moment), try again for up to
        `UNAVAILABLE_SECONDS` before the error reaches the run."""
        deadline = time.monotonic() + UNAVAILABLE_SECONDS
        pause = 0.25
        while True:
            try:
                return self.backend.start_sandbox(cpu, prepare)
            except SandboxUnavailable:
                if self._closed or time.monotonic() + pause > deadline:
                    raise
                self.stats.unavailable_retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _warm_next(self, index: int, prepare: Prepare) -> None:
        slot = self._slots[index]
        with self._lock:
            if self._closed:
                return
            slot.warming.clear()
        self._to_warm.put((index, prepare))

    def _warm_loop(self) -> None:
        while (job := self._to_warm.get()) is not None:
            index, prepare = job
            slot = self._slots[index]
            sandbox: WarmSandbox | None = None
            try:
                if not self._closed:
                    sandbox = self.backend.start_sandbox(slot.cpu, prepare)
                    sandbox.wait_ready(READY_SECONDS)
            except Exception:  # e.g. SandboxUnavailable: run() tries again, and raises it
                self.stats.warm_failures += 1
            with self._lock:
                if self._closed and sandbox is not None:
                    sandbox.destroy()
                    sandbox = None
                slot.warm = sandbox
                slot.warming.set()

    def _reap_loop(self) -> None:
        while (sandbox := self._to_reap.get()) is not None:
            sandbox.destroy()
            with self._lock:
                self._active.discard(sandbox)
            self._to_reap.task_done()
        self._to_reap.task_done()

    def close(self) -> None:
        """Destroy every sandbox, warm or in flight; later `run` calls raise RunnerClosed."""
        with self._lock:
            self._closed = True
            doomed = [slot.warm for slot in self._slots if slot.warm is not None]
            doomed += list(self._active)
            for slot in self._slots:
                slot.warm = None
        for sandbox in doomed:
            sandbox.destroy()
        self._to_warm.put(None)
        self._warmer.join(timeout=READY_SECONDS)
        for slot in self._slots:  # a sandbox the warmer finished meanwhile
            if slot.warm is not None:
                slot.warm.destroy()
        self._to_reap.put(None)
        self._reaper.join()
        if self._owns_backend:
            self.backend.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def episode_spec(request: EpisodeRequest) -> EpisodeSpec:
    limits = request.limits
    return EpisodeSpec(
        source=request.source,
        restricted=request.restricted,
        game=request.game,
        seed=request.seed,
        frameskip=request.env.frameskip,
        repeat_action_probability=request.env.repeat_action_probability,
        max_steps=request.env.max_steps,
        limits=EpisodeLimits(
            act_seconds=limits.act_seconds,
            episode_wall_seconds=limits.episode_wall_seconds,
            episode_cpu_seconds=limits.episode_cpu_seconds,
            memory_mb=limits.memory_mb,
            output_bytes=limits.output_bytes,
            trace_snapshots=limits.trace_snapshots,
            trace_window_steps=limits.trace_window_steps,
        ),
    )


def episode_from_outcome(outcome: WorkerOutcome, seed: int, limits: Limits) -> EpisodeResult:
    """The validated episode the harness reported, or a failure saying how the sandbox ended."""
    if outcome.stdout:
        try:
            episode = EpisodeResult.model_validate_json(outcome.stdout)
        except ValidationError:
            episode = None
        if episode is not None and episode.seed == seed:
            if outcome.oom_killed and episode.status == Status.CRASHED:
                episode.status = Status.MEMORY
                episode.error = f"{episode.error}; the sandbox hit its memory limit"
            return episode
    return EpisodeResult(
        seed=seed,
        status=_sandbox_status(outcome),
        episode_return=0.0,
        length=0,
        error=_sandbox_error(outcome, limits),
        wall_seconds=0.0,
    )


def _sandbox_status(outcome: WorkerOutcome) -> Status:
    if outcome.oom_killed:
        return Status.MEMORY
    if outcome.timed_out:
        return Status.TIMEOUT
    return Status.CRASHED


def _sandbox_error(outcome: WorkerOutcome, limits: Limits) -> str:
    if outcome.oom_killed:
        return f"the sandbox exceeded its {limits.sandbox_memory_mb} MB memory limit"
    if outcome.timed_out:
        return "the sandbox exceeded its wall-clock budget and was killed"
    code = outcome.exit_code
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    tail = outcome.stderr_tail.strip().splitlines()[-5:]
    return f"the sandbox died ({how}) before reporting this episode" + (
        ": " + " | ".join(tail) if tail else ""
    )
