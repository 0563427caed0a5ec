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
from engine.config import RunConfig
from engine.db_option import DEFAULT_DB, DbOption, opened_store
from engine.errors import UserError
from engine.proposers.base import Proposer
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
    return {key.replace("-", "_"): value for key, value in data.items()}


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
    sandbox: Annotated[BackendName, typer.Option(help="Isolation backend.")] = "auto",
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
        str | None, typer.Option(help="The Ray cluster to use with --executor ray.")
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
    from sandbox.games import UnknownGameError, get_game
    from storage.errors import StorageError
    from storage.leases import LeaseHeldError

    settings = _load_config_file(config_file)
    budgets = {
        "iterations": iterations,
        "max_env_steps": max_env_steps,
        "max_tokens": max_tokens,
        "max_cost": max_cost,
        "max_time_seconds": max_time,
    }
    with opened_store(db, create=resume is None) as store:
        if resume is not None:
            if game is not None or seed_program is not None:
                raise UserError(
                    "--resume continues a run as configured: drop --game and --seed-program"
                )
            try:
                run = store.resolve_run(resume)
            except StorageError as error:
                raise UserError(str(error)) from None
            config = RunConfig.from_json(run.config).with_budgets(**budgets)
            run_id: str | None = run.id
            source = None
        else:
            if game is None and "game" not in settings:
                raise UserError("--game is required for a new run (or --resume RUN)")
            try:
                game_name = get_game(game or settings["game"]).name
            except UnknownGameError as error:
                raise UserError(str(error)) from None
            values = {**settings, "game": game_name}
            explicit = {
                "model": model,
                "base_url": base_url,
                "episodes": episodes,
                "max_steps": max_steps,
                "proposer": proposer,
                "concurrency": concurrency,
                "islands": islands,
                "migrate_every": migrate_every,
                "holdout_episodes": holdout_episodes,
                "executor": executor,
                "ray_address": ray_address,
                "llm_timeout_seconds": llm_timeout,
                "llm_retries": llm_retries,
                **budgets,
            }
            values.update({k: v for k, v in explicit.items() if v is not None})
            if deterministic:
                values["deterministic"] = True
            values["sandbox"] = sandbox
            values["max_time_seconds"] = values.pop("max_time", values.get("max_time_seconds"))
            if "proposer" not in values:
                values["proposer"] = "llm" if values.get("model") else "mutate"
            try:
                config = RunConfig.from_json(values)
            except TypeError as error:
                raise UserError(f"bad setting: {error}") from None
            run_id = None
            source = read_policy_file(seed_program) if seed_program else None
        try:
            config.validate()
        except ValueError as error:
            raise UserError(str(error)) from None

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
            f"{(outcome.best_program_id or '-')[:8]} mean return {outcome.best_mean}"
            + (f" (held-out seeds: {held:.2f})" if held is not None else "")
            + f"; {outcome.env_steps} env steps in {outcome.wall_seconds:.0f} s"
        )


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
