"""Prompt size: the reference paper's step-by-step rollout vs. our event-focused feedback.

Plays one Pong rollout of the tracker policy in-process, recording every (obs, action, reward),
and renders it step by step as the paper did. Then evaluates the same policy on the same seed
and settings through `sandbox.evaluate` and composes our feedback. Both go into the same prompt
template (`build_prompt`), so the only difference is the feedback. Prints characters for each
and the ratio (target: ours <= 10% of the paper-style prompt).

    python benchmarks/bench_prompt.py [--steps 400] [--backend none]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from step_by_step import Step, render_step_by_step  # this directory (run as a script)

from engine.feedback import compose_feedback
from engine.prompts import build_prompt
from engine.proposers.base import ProposalContext, ScoredSource
from sandbox.evaluate import evaluate
from sandbox.games import get_game
from sandbox.runtime.emulator import make_env
from sandbox.runtime.observation import build_observation
from sandbox.settings import EnvSettings

POLICY = Path(__file__).resolve().parents[1] / "tests" / "sandbox" / "programs" / "pong_tracker.py"
GAME = "Pong"
SEED = 0


def rollout(source: str, env_settings: EnvSettings) -> list[Step]:
    """Every step of one episode, in-process (trusted code only: the repository's own policy)."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<policy>", "exec"), namespace)
    act = namespace["act"]
    game = get_game(GAME)
    env = make_env(GAME, env_settings.frameskip, env_settings.repeat_action_probability)
    lists = frozenset(game.list_categories)
    steps: list[Step] = []
    try:
        env.reset(seed=SEED)
        obs = build_observation(env.objects, lists, None)
        while len(steps) < env_settings.max_steps:
            action = int(act(obs))
            _, reward, terminated, truncated, _ = env.step(action)
            steps.append((obs, action, float(reward)))
            obs = build_observation(env.objects, lists, None)
            if terminated or truncated:
                break
    finally:
        env.close()
    return steps


def prompt_chars(context: ProposalContext) -> int:
    return sum(len(message["content"]) for message in build_prompt(context))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--backend", default="none", help="sandbox backend for our evaluation")
    args = parser.parse_args()
    source = POLICY.read_text()
    game = get_game(GAME)
    env_settings = EnvSettings.deterministic(max_steps=args.steps)

    steps = rollout(source, env_settings)
    paper_feedback = render_step_by_step(steps)
    result = evaluate(source, GAME, seeds=[SEED], env=env_settings, backend=args.backend)
    our_feedback = compose_feedback(result, game)

    parent = ScoredSource(source, result.mean_return, "tracker")
    paper = prompt_chars(ProposalContext(game=game, parent=parent, feedback=paper_feedback))
    ours = prompt_chars(ProposalContext(game=game, parent=parent, feedback=our_feedback))
    rewards = [reward for _, _, reward in steps if reward]
    episode = result.episodes[0]
    print(
        f"policy {POLICY.name}, {GAME} deterministic, seed {SEED}: in-process rollout "
        f"{len(steps)} steps, return {sum(rewards):g}; sandboxed evaluation ({result.backend}) "
        f"{episode.length} steps, return {episode.episode_return:g}"
    )
    print(
        f"  feedback  step by step {len(paper_feedback):>8,} chars   ours {len(our_feedback):>6,}"
    )
    print(
        f"  feedback ratio (ours / step by step)   {len(our_feedback) / len(paper_feedback):6.2%}"
    )
    print(f"  prompt    step by step {paper:>8,} chars   ours {ours:>6,}")
    verdict = "meets" if ours <= 0.10 * paper else "misses"
    print(
        f"  prompt ratio (ours / step by step)     {ours / paper:6.2%}  ({verdict} the 10% target)"
    )


if __name__ == "__main__":
    main()
