"""`evocade run`: start or resume an unattended optimization."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli_sandbox import diagnostic_lines, read_policy_file
from engine.config import (
    BUDGET_FIELDS,
    SETTING_ALIASES,
    ExecutorName,
    RunConfig,
    config_from_settings,
    config_in_force,
    default,
    option_name,
)
from engine.db_option import DEFAULT_DB, DbOption, opened_store, refuse_unusable_location
from engine.errors import BackendUnavailable, UserError
from engine.proposers.base import Proposer, ProposerName
from engine.textsafe import safe_line
from sandbox.names import BackendName

if TYPE_CHECKING:
    from engine.population.progress import RunOutcome
    from sandbox.episodes import EpisodeRunner


def _load_config_file(path: Path | None) -> dict[str, Any]:
    """Optional TOML settings (e.g. model, base_url, [prices]); command-line options win."""
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"no such config file: {path}") from None
    except IsADirectoryError:
        raise UserError(f"the config file {path} is a directory: give a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    except OSError as error:  # permission denied, a path through a file, an I/O error
        raise UserError(f"cannot read the config file {path}: {error.strerror or error}") from None
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
    iterations: Annotated[
        int | None, typer.Option(help=f"Proposals to make (default {default('iterations')}).")
    ] = None,
    proposer: Annotated[
        ProposerName | None,
        typer.Option(help="`llm` or `mutate` (default: llm when --model is set)."),
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
    episodes: Annotated[
        int | None,
        typer.Option(help=f"Episodes per full evaluation (default {default('episodes')})."),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help=f"Step cap per episode (default {default('max_steps')}).")
    ] = None,
    deterministic: Annotated[
        bool, typer.Option(help="Frameskip 4, no sticky actions (the paper's setting).")
    ] = False,
    max_env_steps: Annotated[int | None, typer.Option(help="Budget: emulator steps.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Budget: LLM tokens.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget: LLM cost.")] = None,
    max_time: Annotated[float | None, typer.Option(help="Budget: wall seconds.")] = None,
    sandbox: Annotated[
        BackendName | None, typer.Option(help=f"Isolation backend (default {default('sandbox')}).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Candidates in flight at once (default: enough to fill every core)."),
    ] = None,
    islands: Annotated[
        int | None,
        typer.Option(help=f"Lineages evolved side by side (default {default('islands')})."),
    ] = None,
    migrate_every: Annotated[
        int | None,
        typer.Option(
            help="Reseed the worst island from the best every N iterations "
            f"(default {default('migrate_every')})."
        ),
    ] = None,
    holdout_episodes: Annotated[
        int | None,
        typer.Option(
            help="Held-out episodes that confirm a new best "
            f"(default {default('holdout_episodes')}; 0: off)."
        ),
    ] = None,
    executor: Annotated[
        ExecutorName | None,
        typer.Option(help=f"`local` or `ray` (a Ray cluster); default {default('executor')}."),
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
        float | None,
        typer.Option(
            help="Seconds per LLM request before a retry "
            f"(default {default('llm_timeout_seconds'):g})."
        ),
    ] = None,
    llm_retries: Annotated[
        int | None,
        typer.Option(help=f"Retries of a failed LLM request (default {default('llm_retries')})."),
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
    settings = _given_settings(locals())  # first: locals() holds exactly the options here
    live = sys.stderr.isatty() and not as_json
    if resume is None:  # checked before the database is opened: bad input creates nothing
        config = _new_config({**_load_config_file(config_file), **settings})
        source = _seed_source(seed_program, config) if seed_program else None
        maker = _make_proposer(config, os.environ.get("OPENAI_API_KEY"))
        refuse_unusable_location(db)
        with _episode_runner(config) as runner, opened_store(db, create=True) as store:
            outcome = _drive(store, config, maker, None, source, runner, live)
    else:
        _refuse_changes(settings, {"--seed-program": seed_program, "--config": config_file})
        with opened_store(db) as store:
            config, run_id = _resumed_config(store, resume, settings)
            maker = _make_proposer(config, os.environ.get("OPENAI_API_KEY"))
            with _episode_runner(config) as runner:
                outcome = _drive(store, config, maker, run_id, None, runner, live)
    _report(outcome, as_json)


NOT_SETTINGS = ("resume", "config_file", "seed_program", "db", "as_json")


def _given_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig settings given on the command line, by RunConfig's field names; an option
    left out is absent, so the TOML file's value, else RunConfig's default, applies."""
    return {
        SETTING_ALIASES.get(name, name): value
        for name, value in params.items()
        if name not in NOT_SETTINGS and value is not None and value is not False
    }


def _drive(
    store: Any,
    config: RunConfig,
    proposer: Proposer,
    run_id: str | None,
    source: str | None,
    episodes: EpisodeRunner | None,
    live: bool,
) -> RunOutcome:
    """Create (or resume) the run and drive it on `episodes` to its end or a stop."""
    from engine.loop import StopRequest, optimize
    from engine.progress import LineReporter, LiveReporter
    from storage.leases import LeaseHeldError

    stop = StopRequest()
    stop.install_signal_handlers()
    with LiveReporter(config) if live else LineReporter() as reporter:
        try:
            return optimize(
                store,
                config,
                proposer,
                run_id=run_id,
                seed_program=source,
                reporter=reporter,
                stop=stop,
                runner=episodes,
            )
        except LeaseHeldError as error:
            raise UserError(str(error)) from None


@contextmanager
def _episode_runner(config: RunConfig) -> Iterator[EpisodeRunner | None]:
    """The run's sandboxes, opened before anything is stored: with no backend on this machine,
    one line and exit 1, and no run row left behind (a resumed run stays as it was, so it can
    be resumed once the backend is back)."""
    from engine.loop import episode_runner as open_episode_runner  # the loop's own: they agree
    from sandbox.backends.base import SandboxUnavailable

    if config.executor == "ray":  # the loop reaches the cluster itself, before the run row
        yield None
        return
    stack = ExitStack()
    try:
        runner = stack.enter_context(open_episode_runner(config, None))
    except SandboxUnavailable as error:
        raise BackendUnavailable(
            f"no sandbox backend: --sandbox {config.sandbox}: {error}"
        ) from None
    with stack:
        yield runner


def _report(outcome: RunOutcome, as_json: bool) -> None:
    """The outcome on stdout (one line, or JSON), then the exit code it calls for."""
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


def _new_config(values: dict[str, Any]) -> RunConfig:
    """The TOML file's settings, then the command line's; every key and type checked."""
    from sandbox.games import UnknownGameError, get_game

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


# Where a Ray run plays, not what it computes: may change on resume (a restarted cluster has a
# new address).
RAY_PLACEMENT = ("ray_address", "ray_slots")


def _refuse_changes(settings: dict[str, Any], others: dict[str, object]) -> None:
    """A resume continues the run as it was configured: only budgets and where a Ray run
    plays may change."""
    may_change = (*BUDGET_FIELDS, *RAY_PLACEMENT)
    given = [option_name(name) for name in settings if name not in may_change]
    given += [option for option, value in others.items() if value is not None]
    if given:
        raise UserError(
            f"--resume continues a run as it was configured: drop {', '.join(given)} "
            "(only budgets such as --iterations may change)"
        )


def _resumed_config(store: Any, resume: str, settings: dict[str, Any]) -> tuple[RunConfig, str]:
    """The run's stored settings with raised budgets; a resume that would have nothing to do
    is refused."""
    from storage.errors import StorageError

    try:
        run = store.resolve_run(resume)
    except StorageError as error:
        raise UserError(str(error)) from None
    budgets = {name: value for name, value in settings.items() if name in BUDGET_FIELDS}
    placement = {name: settings.get(name) for name in RAY_PLACEMENT}
    events = store.events(run.id)
    resumes = [event.data or {} for event in events if event.kind == "run_resumed"]
    in_force = config_in_force(run.config, resumes)
    config = in_force.with_budgets(**budgets).with_placement(**placement)
    try:
        config.validate()
    except ValueError as error:
        raise UserError(str(error)) from None
    status = _refuse_if_driven(store, run.id, run.status)
    decided = sum(1 for event in events if event.kind == "iteration")
    _refuse_idle(run.id[:8], status, decided, config.iterations, budgets.get("iterations"))
    return config, run.id


def _refuse_if_driven(store: Any, run_id: str, status: str) -> str:
    """Refuse, before any sandbox starts, a run another live process drives (`optimize` takes
    the lease race-free later); else the status as `runs` shows it (`interrupted` for a run
    whose process was killed)."""
    from storage.leases import held_message, may_acquire, shown_status
    from storage.models import utcnow

    lease, now = store.lease(run_id), utcnow()
    if lease is not None and not may_acquire(lease, "", now, store.host, store.pid_alive):
        raise UserError(held_message(lease, now))
    return shown_status(status, lease, now, store.host)


def _refuse_idle(run: str, status: str, decided: int, iterations: int, asked: int | None) -> None:
    """Refuse a resume with no iteration left to decide, whatever the run's status (a failed or
    stopped run with every iteration decided would only append events and change its status)."""
    go_on = f"give --iterations N with N above {decided} to go on"
    if asked is not None and asked < decided:
        raise UserError(f"run {run} has already decided {decided} iterations: {go_on}")
    if decided < iterations:
        return
    if status == "finished":
        raise UserError(f"run {run} is finished ({decided} iterations): {go_on}")
    raise UserError(
        f"run {run} ({safe_line(status)}) has all its {decided} iterations decided: {go_on}"
    )


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
            where = diagnostic_lines(str(path), report.diagnostics[:1])
            why = where[0] if where else f"{safe_line(path)} was refused"
            raise UserError(f"the seed program is rejected by the checker: {why}")
    return source


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
