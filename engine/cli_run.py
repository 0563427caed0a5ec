"""`evocade run`: start or resume an unattended optimization."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli_sandbox import read_policy_file
from engine.config import RunConfig, config_from_settings
from engine.db_option import DEFAULT_DB, DbOption, opened_store
from engine.errors import UserError
from engine.proposers.base import Proposer
from engine.textsafe import safe_line
from sandbox.names import BackendName


def _load_config_file(path: Path | None) -> dict[str, Any]:
    """Optional TOML settings (e.g. model, base_url, [prices]); command-line options win."""
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"no such config file: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    return data


def _make_proposer(config: RunConfig, api_key: str | None) -> Proposer:
    if config.proposer == "mutate":
        from engine.proposers.mutate import MutationProposer

        return MutationProposer(seed=config.mutation_seed)
    from engine.proposers.llm import LlmProposer

    prices = {model: (float(p[0]), float(p[1])) for model, p in config.prices.items()}
    try:
        return LlmProposer(
            model=config.model or "",
            base_url=config.base_url,
            api_key=api_key,
            prices=prices,
            timeout_seconds=config.llm_timeout_seconds,
            max_retries=config.llm_retries,
        )
    except ValueError as error:
        raise UserError(str(error)) from None


def run_command(
    game: Annotated[str | None, typer.Option("--game", "-g", help="Game to optimize.")] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue the run with this id (prefix ok).")
    ] = None,
    iterations: Annotated[int | None, typer.Option(help="Proposals to make (default 20).")] = None,
    proposer: Annotated[
        str | None, typer.Option(help="`llm` or `mutate` (default: llm when --model is set).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="LLM model name.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (key: OPENAI_API_KEY).")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML file with any of these settings.")
    ] = None,
    seed_program: Annotated[
        Path | None, typer.Option(help="Start from this policy instead of the game's starter.")
    ] = None,
    episodes: Annotated[int | None, typer.Option(help="Episodes per full evaluation.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Step cap per episode.")] = None,
    deterministic: Annotated[
        bool, typer.Option(help="Frameskip 4, no sticky actions (the paper's setting).")
    ] = False,
    max_env_steps: Annotated[int | None, typer.Option(help="Budget: emulator steps.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Budget: LLM tokens.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget: LLM cost.")] = None,
    max_time: Annotated[float | None, typer.Option(help="Budget: wall seconds.")] = None,
    sandbox: Annotated[
        BackendName | None, typer.Option(help="Isolation backend (default auto).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Candidates in flight at once (default: enough to fill every core)."),
    ] = None,
    islands: Annotated[
        int | None, typer.Option(help="Lineages evolved side by side (default 1).")
    ] = None,
    migrate_every: Annotated[
        int | None,
        typer.Option(help="Reseed the worst island from the best every N iterations (10)."),
    ] = None,
    holdout_episodes: Annotated[
        int | None,
        typer.Option(help="Held-out episodes that confirm a new best (default 3; 0: off)."),
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="`local` (default) or `ray` (a Ray cluster).")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="The Ray cluster to use with --executor ray (may change on --resume)."),
    ] = None,
    ray_slots: Annotated[
        int | None,
        typer.Option(help="With --executor ray: at most N cores (default: every free one)."),
    ] = None,
    llm_timeout: Annotated[
        float | None, typer.Option(help="Seconds per LLM request before a retry (120).")
    ] = None,
    llm_retries: Annotated[
        int | None, typer.Option(help="Retries of a failed LLM request (4).")
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Optimize a policy program, unattended; stops cleanly on SIGINT/SIGTERM or a budget.

    Without --model the offline mutation proposer is used, which needs no network.

    Example: evocade run --game Pong --iterations 10 --max-time 600
    Example: evocade run --game Pong --model gpt-4o-mini --base-url http://127.0.0.1:8000/v1
    Example: evocade run --resume 3f2a9c1b --iterations 40
    """
    from engine.loop import StopRequest, optimize
    from engine.progress import LineReporter, LiveReporter
    from storage.leases import LeaseHeldError

    settings = _load_config_file(config_file)
    budgets = {
        "iterations": iterations,
        "max_env_steps": max_env_steps,
        "max_tokens": max_tokens,
        "max_cost": max_cost,
        "max_time_seconds": max_time,
    }
    explicit = {
        "model": model,
        "base_url": base_url,
        "episodes": episodes,
        "max_steps": max_steps,
        "proposer": proposer,
        "sandbox": sandbox,
        "concurrency": concurrency,
        "islands": islands,
        "migrate_every": migrate_every,
        "holdout_episodes": holdout_episodes,
        "executor": executor,
        "ray_address": ray_address,
        "ray_slots": ray_slots,
        "llm_timeout_seconds": llm_timeout,
        "llm_retries": llm_retries,
        "deterministic": True if deterministic else None,
    }
    source = None
    if resume is None:  # checked before the database is opened: bad input creates nothing
        config = _new_config(settings, explicit, budgets, game)
        source = _seed_source(seed_program, config) if seed_program else None
    with opened_store(db, create=resume is None) as store:
        run_id = None
        if resume is not None:
            fixed: dict[str, object] = {
                "--game": game,
                "--seed-program": seed_program,
                "--config": config_file,
            }
            fixed.update({f"--{k.replace('_', '-')}": v for k, v in explicit.items()})
            config, run_id = _resumed_config(store, resume, budgets, fixed)
        proposer_impl = _make_proposer(config, os.environ.get("OPENAI_API_KEY"))
        stop = StopRequest()
        stop.install_signal_handlers()
        live = sys.stderr.isatty() and not as_json
        with LiveReporter(config) if live else LineReporter() as reporter:
            try:
                outcome = optimize(
                    store,
                    config,
                    proposer_impl,
                    run_id=run_id,
                    seed_program=source,
                    reporter=reporter,
                    stop=stop,
                )
            except LeaseHeldError as error:
                raise UserError(str(error)) from None
    if as_json:
        print(json.dumps(outcome.__dict__))
    else:
        held = outcome.best_holdout_mean
        print(
            f"run {outcome.run_id[:8]}: {outcome.reason}; best program "
            f"{(outcome.best_program_id or '-')[:8]} mean return "
            f"{'-' if outcome.best_mean is None else f'{outcome.best_mean:.2f}'}"
            + (f" (held-out seeds: {held:.2f})" if held is not None else "")
            + f"; {outcome.env_steps} env steps in {outcome.wall_seconds:.0f} s"
        )
    code = _exit_code(outcome.reason)
    if code:
        raise typer.Exit(code)


def _exit_code(reason: str) -> int:
    """130 for SIGINT and 143 for SIGTERM (the shell's convention), 1 for a failed run."""
    if reason.startswith("failed"):
        return 1
    if "SIGINT" in reason:
        return 130
    if "SIGTERM" in reason:
        return 143
    return 0


def _new_config(
    settings: dict[str, Any], explicit: dict[str, Any], budgets: dict[str, Any], game: str | None
) -> RunConfig:
    """The TOML file's settings, then the command line's; every key and type checked."""
    from sandbox.games import UnknownGameError, get_game

    values = {**settings, **{k: v for k, v in {**explicit, **budgets}.items() if v is not None}}
    if game is not None:
        values["game"] = game
    if "game" not in values:
        raise UserError("--game is required for a new run (or --resume RUN)")
    try:
        values["game"] = get_game(str(values["game"])).name
    except UnknownGameError as error:
        raise UserError(str(error)) from None
    values.setdefault("proposer", "llm" if values.get("model") else "mutate")
    try:
        config = config_from_settings(values)
        config.validate()
    except ValueError as error:
        raise UserError(str(error)) from None
    return config


RAY_PLACEMENT = ("ray_address", "ray_slots")


def _resumed_config(
    store: Any, resume: str, budgets: dict[str, Any], fixed: dict[str, Any]
) -> tuple[RunConfig, str]:
    """The run's stored settings with raised budgets; anything else given is refused, and so
    is a resume that would have nothing to do."""
    from storage.errors import StorageError

    # Where a Ray run plays may change (a restarted cluster has a new address); what it
    # computes may not.
    placement = {key: fixed.pop(f"--{key.replace('_', '-')}", None) for key in RAY_PLACEMENT}
    given = [option for option, value in fixed.items() if value is not None]
    if given:
        raise UserError(
            f"--resume continues a run as it was configured: drop {', '.join(given)} "
            "(only budgets such as --iterations may change)"
        )
    try:
        run = store.resolve_run(resume)
    except StorageError as error:
        raise UserError(str(error)) from None
    config = RunConfig.from_json(run.config).with_budgets(**budgets).with_placement(**placement)
    try:
        config.validate()
    except ValueError as error:
        raise UserError(str(error)) from None
    decided = sum(1 for event in store.events(run.id) if event.kind == "iteration")
    if run.status == "finished" and decided >= config.iterations:
        raise UserError(
            f"run {run.id[:8]} is finished ({decided} iterations): give --iterations N with N "
            f"above {decided} to go on"
        )
    return config, run.id


def _seed_source(path: Path, config: RunConfig) -> str:
    """The seed program's source; refused up front when the static checker rejects it (the
    run could never build on it)."""
    from sandbox.checker import check_source

    source = read_policy_file(path)
    if not source.strip():
        raise UserError(f"{path} is empty: a seed program must define act(obs)")
    if config.check:
        report = check_source(source)
        if not report.ok:
            first = report.diagnostics[0] if report.diagnostics else None
            why = f": line {first.line}: {first.rule}: {safe_line(first.message)}" if first else ""
            raise UserError(f"the seed program {path} is rejected by the checker{why}")
    return source


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
