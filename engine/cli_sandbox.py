"""`evocade check`, `evocade evaluate` and `evocade games`: the sandbox from the command line."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.errors import UserError

if TYPE_CHECKING:
    from sandbox.results import EvaluationResult


class SandboxChoice(StrEnum):
    auto = "auto"
    bwrap = "bwrap"
    docker = "docker"
    none = "none"


def read_policy_file(path: Path) -> str:
    """The source of a policy file, or a one-line UserError saying why it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a policy file") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None


def check_command(
    file: Annotated[Path, typer.Argument(help="Policy source file (defines act(obs)).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Statically check a policy program; exit 0 when clean, 1 when rejected.

    Example: evocade check my_policy.py --json
    """
    from sandbox.checker import check_source, format_report

    report = check_source(read_policy_file(file))
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        print(format_report(report) if not report.ok else f"{file}: ok")
    raise typer.Exit(0 if report.ok else 1)


def games_command(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show each game's full description.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the supported games, their objects and actions.

    Example: evocade games --verbose
    """
    from sandbox.games import GAMES

    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": g.name,
                        "ale_id": g.ale_id,
                        "actions": list(g.actions),
                        "objects": list(g.single_categories),
                        "object_lists": list(g.list_categories),
                        "description": g.describe(),
                    }
                    for g in GAMES.values()
                ],
                indent=2,
            )
        )
        return
    for game in GAMES.values():
        if verbose:
            print(game.describe() + "\n")
        else:
            print(
                f"{game.name:<14} {len(game.actions):>2} actions  objects: "
                + ", ".join(game.categories)
            )


def evaluate_command(
    file: Annotated[Path, typer.Argument(help="Policy source file (defines act(obs)).")],
    game: Annotated[str, typer.Option("--game", "-g", help="Game name, see `evocade games`.")],
    episodes: Annotated[int, typer.Option(help="Episodes to play (seeds S, S+1, ...).")] = 3,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    deterministic: Annotated[
        bool, typer.Option(help="Frameskip 4 without sticky actions (the paper's setting).")
    ] = False,
    repeat_action_probability: Annotated[
        float | None, typer.Option(help="Sticky-action probability (default 0.25).")
    ] = None,
    max_steps: Annotated[int, typer.Option(help="Step cap per episode.")] = 27_000,
    sandbox: Annotated[
        SandboxChoice, typer.Option(help="Isolation backend; `none` runs on the host.")
    ] = SandboxChoice.auto,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip the static checker (the sandbox still holds).")
    ] = False,
    act_seconds: Annotated[float, typer.Option(help="Wall time per act() call.")] = 1.0,
    memory_mb: Annotated[int, typer.Option(help="Memory for the policy process.")] = 256,
    workers: Annotated[
        int | None, typer.Option(help="Parallel sandboxes (default: one per core).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Play a policy program in the sandbox and report its returns.

    Exit 0 when every episode ended `ok`, 1 otherwise, 2 on bad input.

    Example: evocade evaluate my_policy.py --game Pong --episodes 3 --deterministic --json
    """
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.evaluate import evaluate
    from sandbox.games import UnknownGameError, get_game
    from sandbox.settings import EnvSettings, Limits

    if episodes < 1:
        raise UserError(f"--episodes must be at least 1 (got {episodes})")
    if max_steps < 1:
        raise UserError(f"--max-steps must be at least 1 (got {max_steps})")
    if deterministic and repeat_action_probability not in (None, 0.0):
        raise UserError("--deterministic means no sticky actions; drop --repeat-action-probability")
    if repeat_action_probability is not None and not 0.0 <= repeat_action_probability <= 1.0:
        raise UserError("--repeat-action-probability must be between 0 and 1")
    if act_seconds <= 0 or memory_mb < 32:
        raise UserError("--act-seconds must be > 0 and --memory-mb at least 32")
    try:
        game_name = get_game(game).name
    except UnknownGameError as error:
        raise UserError(str(error)) from None
    source = read_policy_file(file)

    if deterministic:
        env = EnvSettings.deterministic(max_steps=max_steps)
    elif repeat_action_probability is not None:
        env = EnvSettings(repeat_action_probability=repeat_action_probability, max_steps=max_steps)
    else:
        env = EnvSettings(max_steps=max_steps)
    limits = Limits(act_seconds=act_seconds, memory_mb=memory_mb)
    if sandbox == SandboxChoice.none:
        print(
            "WARNING: --sandbox none runs this program on the host, with your files and "
            "network; only the policy process's own rlimits and seccomp filter remain.",
            file=sys.stderr,
        )
    try:
        result = evaluate(
            source,
            game_name,
            seeds=list(range(seed, seed + episodes)),
            env=env,
            limits=limits,
            backend=sandbox.value,
            check=not no_check,
            workers=workers,
        )
    except SandboxUnavailable as error:
        raise UserError(str(error)) from None

    if as_json:
        print(json.dumps(result.summary_dict(), indent=2))
    else:
        _print_summary(file, result)
    raise typer.Exit(0 if result.status == "ok" else 1)


def _print_summary(file: Path, result: EvaluationResult) -> None:
    if result.status == "rejected":
        diagnostics = result.check.diagnostics if result.check else []
        first = diagnostics[0].render() if diagnostics else "no diagnostics"
        more = (
            f" ({len(diagnostics) - 1} more: evocade check {file})" if len(diagnostics) > 1 else ""
        )
        print(f"{file}: rejected by the static checker: {first}{more}")
        return
    print(
        f"{result.game} [{result.env.label}] backend={result.backend} "
        f"checked={result.checked}: status {result.status}, mean return "
        f"{result.mean_return:.2f} over {len(result.episodes)} episodes "
        f"({result.total_steps} steps, {result.wall_seconds:.1f} s)"
    )
    for episode in result.episodes:
        line = (
            f"  seed {episode.seed}: {episode.status:<14} return {episode.episode_return:>8g}"
            f"  steps {episode.length}"
        )
        print(line)
        if episode.error:
            print("    " + episode.error.strip().replace("\n", "\n    "))


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)
    app.command("evaluate")(evaluate_command)
    app.command("games")(games_command)
