"""`evocade evaluate`: play a policy file in the sandbox, with live progress, and report it.

The evaluation runs in a worker thread over an episode runner (`sandbox.evaluate.open_runner`)
while the main thread waits for it, shows progress and listens for Ctrl-C: an interrupt closes
the runner, kills every sandbox this process started and exits 130 within seconds, instead of
waiting for episodes that may run for minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli_sandbox import diagnostic_lines, json_text, read_policy_file
from engine.config import (
    MAX_ACT_SECONDS,
    MAX_MEMORY_MB,
    MIN_MEMORY_MB,
    RUN_DEFAULTS,
    RunConfig,
    default,
)
from engine.episode_progress import EpisodeProgress, ProgressRunner
from engine.errors import BackendUnavailable, UserError
from engine.interruptible import Interrupted, kill_children, kill_own_containers, run_stoppable
from engine.textsafe import indented, safe_line
from sandbox.names import BackendName

if TYPE_CHECKING:
    from sandbox.episodes import EpisodeRunner
    from sandbox.pool import WarmPool
    from sandbox.results import EpisodeResult, EvaluationResult
    from sandbox.settings import EnvSettings, Limits


def evaluation_config(
    *,
    game: str,
    episodes: int,
    seed: int,
    deterministic: bool,
    repeat_action_probability: float | None,
    max_steps: int,
    sandbox: BackendName,
    check: bool,
    act_seconds: float,
    memory_mb: int,
    workers: int | None,
) -> RunConfig:
    """The options as a RunConfig, validated by the same code as `evocade run`'s settings
    (UserError naming the option and its allowed range), so the two commands agree on every
    default, range and env setting."""
    if deterministic and repeat_action_probability not in (None, 0.0):
        raise UserError("--deterministic means no sticky actions; drop --repeat-action-probability")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    sticky = repeat_action_probability
    if sticky is None:
        sticky = RUN_DEFAULTS["repeat_action_probability"]
    config = RunConfig(
        game=game,
        episodes=episodes,
        first_seed=seed,
        deterministic=deterministic,
        max_steps=max_steps,
        sandbox=sandbox,
        check=check,
        act_seconds=act_seconds,
        memory_mb=memory_mb,
        holdout_episodes=0,  # no held-out seeds here: any --seed is fine
        repeat_action_probability=sticky,
    )
    try:
        config.validate()
    except ValueError as error:
        raise UserError(str(error)) from None
    return config


def evaluate_command(
    file: Annotated[Path, typer.Argument(help="Policy source file (defines act(obs)).")],
    game: Annotated[str, typer.Option("--game", "-g", help="Game name, see `evocade games`.")],
    episodes: Annotated[
        int, typer.Option(help="Episodes to play (seeds S, S+1, ...).")
    ] = RUN_DEFAULTS["episodes"],
    seed: Annotated[int, typer.Option(help="First seed (0 or more).")] = RUN_DEFAULTS["first_seed"],
    deterministic: Annotated[
        bool, typer.Option(help="Frameskip 4 without sticky actions (the paper's setting).")
    ] = False,
    repeat_action_probability: Annotated[
        float | None,
        typer.Option(
            help="Sticky-action probability, 0 to 1 "
            f"(default {default('repeat_action_probability'):g})."
        ),
    ] = None,
    max_steps: Annotated[int, typer.Option(help="Step cap per episode.")] = RUN_DEFAULTS[
        "max_steps"
    ],
    sandbox: Annotated[
        BackendName, typer.Option(help="Isolation backend; `none` runs on the host.")
    ] = RUN_DEFAULTS["sandbox"],
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip the static checker (the sandbox still holds).")
    ] = False,
    act_seconds: Annotated[
        float, typer.Option(help=f"Wall time per act() call, 0 < s <= {MAX_ACT_SECONDS:g}.")
    ] = RUN_DEFAULTS["act_seconds"],
    memory_mb: Annotated[
        int,
        typer.Option(help=f"Memory for the policy process, {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB."),
    ] = RUN_DEFAULTS["memory_mb"],
    workers: Annotated[
        int | None, typer.Option(help="Episodes at once, one sandbox each (default: one per core).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Play a policy program in the sandbox and report its returns.

    Failed episodes are listed with their status before any mean, and the mean shown as the
    score counts only the episodes that ended `ok`. Exit 0 when every episode ended `ok`,
    1 otherwise or with no sandbox backend, 2 on bad input, 130 when interrupted (Ctrl-C stops
    it within seconds).

    Example: evocade evaluate my_policy.py --game Pong --episodes 3 --deterministic --json
    """
    from sandbox.evaluate import plan_evaluation
    from sandbox.games import UnknownGameError, get_game

    config = evaluation_config(
        game=game,
        episodes=episodes,
        seed=seed,
        deterministic=deterministic,
        repeat_action_probability=repeat_action_probability,
        max_steps=max_steps,
        sandbox=sandbox,
        check=not no_check,
        act_seconds=act_seconds,
        memory_mb=memory_mb,
        workers=workers,
    )
    try:
        game_name = get_game(game).name
    except UnknownGameError as error:
        raise UserError(str(error)) from None
    source = read_policy_file(file)
    env, limits, seeds = config.full_env(), config.limits(), config.seeds

    plan = plan_evaluation(
        source, game_name, seeds=seeds, env=env, limits=limits, check=not no_check
    )
    if not plan.requests:  # refused by the static check: never runs, no sandbox needed
        _print_result(file, plan.result(sandbox, [], 0.0), as_json)
        raise typer.Exit(1)

    runner = _open_runner(sandbox, limits, workers)
    try:
        result = play_interruptibly(
            runner,
            source,
            game_name,
            seeds,
            env,
            limits,
            check=not no_check,
            label=f"{file.name} on {game_name}",
            lines=not as_json,
        )
    except Interrupted as interrupted:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        raise typer.Exit(interrupted.exit_code) from None
    finally:
        runner.close()
    _print_result(file, result, as_json)
    raise typer.Exit(0 if result.status == "ok" else 1)


def _open_runner(sandbox: BackendName, limits: Limits, workers: int | None) -> WarmPool:
    """The evaluation's sandboxes, or a one-line error when the backend is unavailable; a
    warning first when there is no sandbox at all."""
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.evaluate import open_runner

    if sandbox == "none":
        print(
            "WARNING: --sandbox none runs this program on the host, with your files and "
            "network; only the policy process's own rlimits and seccomp filter remain.",
            file=sys.stderr,
        )
    try:
        return open_runner(sandbox, limits, slots=workers)
    except SandboxUnavailable as error:  # exit 1, as `run` gives: the machine, not the input
        raise BackendUnavailable(f"no sandbox backend: --sandbox {sandbox}: {error}") from None


def play_interruptibly(
    runner: EpisodeRunner,
    source: str,
    game: str,
    seeds: list[int],
    env: EnvSettings,
    limits: Limits,
    *,
    check: bool,
    label: str,
    lines: bool,
) -> EvaluationResult:
    """Play the seeds on `runner` showing per-episode progress; on SIGINT/SIGTERM, close the
    runner, kill every sandbox this process started and raise `Interrupted`."""
    from sandbox.evaluate import evaluate

    progress = EpisodeProgress(len(seeds), label, live=sys.stderr.isatty(), lines=lines)
    stopped: set[int | str] = set()

    def play() -> EvaluationResult:
        with progress:
            pool = ProgressRunner(runner, progress)
            return evaluate(
                source, game, seeds=seeds, env=env, limits=limits, check=check, pool=pool
            )

    def stop() -> str:
        progress.silence()
        runner.close()  # later episodes never start; a warm pool also cuts those in flight
        stopped.update(kill_children())
        if runner.name == "docker":
            stopped.update(kill_own_containers())
        return f"stopped {len(stopped)} sandbox process(es); no result reported"

    return run_stoppable(play, stop)


# -- the report --------------------------------------------------------------------------------


def step_capped(episode: EpisodeResult, max_steps: int) -> bool:
    """Whether the episode was cut by the step cap rather than ended by the game: the harness
    says so (`EpisodeResult.step_capped`)."""
    return episode.step_capped


def ok_mean(result: EvaluationResult) -> float | None:
    """The mean return over the episodes that ended `ok`: the only mean that is a score."""
    returns = [e.episode_return for e in result.episodes if e.status == "ok"]
    return sum(returns) / len(returns) if returns else None


def json_result(result: EvaluationResult) -> dict[str, Any]:
    """The `--json` object. Its `mean_return` is over the ok episodes only (null when none
    ended ok), as in the text report: a policy that scores and then raises must not get its
    partial return read as a score by a script. `episodes_failed` says how many are left out;
    every episode's own return stays in `returns` and `episodes`."""
    data = result.summary_dict()
    data["mean_return"] = data["mean_return_ok"] = ok_mean(result)
    data["episodes_ok"] = sum(e.status == "ok" for e in result.episodes)
    data["episodes_failed"] = len(result.episodes) - data["episodes_ok"]
    for episode, shown in zip(result.episodes, data["episodes"], strict=True):
        shown["step_capped"] = step_capped(episode, result.env.max_steps)
    return data


def _print_result(file: Path, result: EvaluationResult, as_json: bool) -> None:
    if as_json:
        print(json_text(json_result(result)))
    else:
        print(render_result(str(file), result))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def render_result(where: str, result: EvaluationResult) -> str:
    """The text report: each episode (status, return, steps, error, output), then the status,
    then a mean that says exactly which episodes it counts."""
    name = safe_line(where)
    if result.status == "rejected":
        diagnostics = result.check.diagnostics if result.check else []
        lines = diagnostic_lines(where, diagnostics)
        lines.append(
            f"{name}: rejected by the static checker, {_plural(len(diagnostics), 'problem')}; "
            "nothing was run"
        )
        return "\n".join(lines)
    checked = "checked" if result.checked else "NOT checked (--no-check)"
    lines = [
        f"{name} on {result.game} [{result.env.label}], backend {safe_line(result.backend)}, "
        f"{checked}"
    ]
    max_steps = result.env.max_steps
    capped = 0
    for episode in result.episodes:
        cut = step_capped(episode, max_steps)
        capped += cut
        lines.append(
            f"  seed {episode.seed:<6} {episode.status:<14} return {episode.episode_return:>8g}"
            f"  steps {episode.length:>6}" + ("  (cut at the step cap)" if cut else "")
        )
        if episode.error:
            lines.append(indented(episode.error.strip(), "      "))
        if episode.output:
            lines.append("      policy output:")
            lines.append(indented(episode.output, "      | "))
    lines.extend(_summary_lines(result, capped))
    return "\n".join(lines)


def _summary_lines(result: EvaluationResult, capped: int) -> list[str]:
    """What failed, how many episodes the step cap cut, and a mean that says which episodes
    it counts."""
    lines = []
    max_steps = result.env.max_steps
    failed = [e for e in result.episodes if e.status != "ok"]
    total = len(result.episodes)
    took = f"{result.total_steps} steps, {result.wall_seconds:.1f} s"
    if failed:
        which = ", ".join(f"seed {e.seed} {e.status}" for e in failed[:5])
        more = f", {len(failed) - 5} more" if len(failed) > 5 else ""
        lines.append(
            f"status {result.status}: {len(failed)} of {_plural(total, 'episode')} failed "
            f"({which}{more})"
        )
    if capped:
        lines.append(
            f"note: {capped} of {_plural(total, 'episode')} stopped at the step cap "
            f"(--max-steps {max_steps}): their returns cover only part of a game"
        )
    mean = ok_mean(result)
    if not failed:
        lines.append(
            f"status ok: mean return {mean:.2f} over {_plural(total, 'episode')} ({took})"
            if mean is not None
            else f"status ok: no episodes ({took})"
        )
    elif mean is None:
        lines.append(
            f"no score: no episode ended ok; the returns above of failed episodes are partial "
            f"({took})"
        )
    else:
        ok_count = total - len(failed)
        lines.append(
            f"mean return {mean:.2f} over the {_plural(ok_count, 'ok episode')} only; the "
            f"{_plural(len(failed), 'failed episode')} are not counted ({took})"
        )
    return lines


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
