"""The games evocade can play, and what a policy (and the LLM writing it) must know about each.

Each description is written for the prompt: it names every object category the observation can
hold, which ones are lists, what the coordinates mean and what each action index does. It is
plain data with no emulator import, so the checker, the CLI and the prompt builder can use it
without paying for ALE/OCAtari start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

# A trace stores each step's action as one character: ACTION_ALPHABET[index] (Seaquest has 18).
ACTION_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

COORDINATES = (
    "Coordinates are Atari screen pixels: x grows to the right (0..159), y grows downwards "
    "(0..209). Each object is a dict {'x', 'y', 'w', 'h', 'dx', 'dy'} of ints: (x, y) is the "
    "top-left corner, (w, h) the size, (dx, dy) the movement since the previous step."
)


@dataclass(frozen=True)
class Game:
    """One supported Atari game.

    `list_categories` are the object categories that can appear several times at once; they are
    always present in `obs` as a (possibly empty) list. Every other category maps to one dict
    and is absent from `obs` while that object is not on screen.
    """

    name: str
    ale_id: str
    actions: tuple[str, ...]
    single_categories: tuple[str, ...]
    list_categories: tuple[str, ...]
    has_lives: bool
    summary: str

    @property
    def categories(self) -> tuple[str, ...]:
        return self.single_categories + self.list_categories

    def describe(self) -> str:
        """The paragraph the LLM prompt and `evocade games --verbose` show."""
        actions = ", ".join(f"{i} {name}" for i, name in enumerate(self.actions))
        parts = [f"{self.name}: {self.summary}", COORDINATES]
        if self.single_categories:
            parts.append(
                "Single objects (absent while off screen): "
                + ", ".join(self.single_categories)
                + "."
            )
        if self.list_categories:
            parts.append(
                "Object lists (always present, maybe empty): "
                + ", ".join(self.list_categories)
                + "."
            )
        if self.has_lives:
            parts.append("obs['lives'] is the number of lives left (int).")
        parts.append(f"act(obs) must return an int action index: {actions}.")
        return " ".join(parts)


_GAMES = (
    Game(
        name="Pong",
        ale_id="ALE/Pong-v5",
        actions=("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"),
        single_categories=("Player", "Ball", "Enemy"),
        list_categories=(),
        has_lives=False,
        summary=(
            "You control the right paddle 'Player' (x about 140); the computer controls the left "
            "paddle 'Enemy'. Hit the 'Ball' back; you score +1 when it passes the Enemy and -1 "
            "when it passes you; the first side to 21 ends the game (return in -21..21). Action "
            "RIGHT (2) moves your paddle up (smaller y), LEFT (3) moves it down (larger y); FIRE "
            "variants do the same. The Ball is absent between points."
        ),
    ),
    Game(
        name="Breakout",
        ale_id="ALE/Breakout-v5",
        actions=("NOOP", "FIRE", "RIGHT", "LEFT"),
        single_categories=("Player", "Ball"),
        list_categories=("Block",),
        has_lives=True,
        summary=(
            "You move the paddle 'Player' along the bottom (y about 189) to keep the 'Ball' in "
            "play and break the 'Block' rows at the top (1 to 7 points each, higher rows score "
            "more). FIRE (1) launches a new ball after one is lost (the ball is absent until "
            "then); RIGHT (2) moves right (larger x), LEFT (3) moves left. You have 5 lives."
        ),
    ),
    Game(
        name="SpaceInvaders",
        ale_id="ALE/SpaceInvaders-v5",
        actions=("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"),
        single_categories=("Player", "Satellite"),
        list_categories=("Shield", "Bullet", "Alien"),
        has_lives=True,
        summary=(
            "You move the cannon 'Player' along the bottom (y about 185) and shoot the 'Alien' "
            "grid (5 to 30 points each; the 'Satellite' crossing the top is worth more). 'Bullet'"
            " holds every shot on screen, yours (moving up, dy < 0) and the aliens' (moving "
            "down); 'Shield' bunkers absorb shots. Only one of your shots can be on screen at a "
            "time. You have 3 lives."
        ),
    ),
    Game(
        name="Freeway",
        ale_id="ALE/Freeway-v5",
        actions=("NOOP", "UP", "DOWN"),
        single_categories=(),
        list_categories=("Chicken", "Car"),
        has_lives=False,
        summary=(
            "Guide your chicken across ten lanes of traffic; each crossing scores +1 and the "
            "chicken restarts at the bottom. 'Chicken' lists both chickens: yours is the one with"
            " the smaller x (x about 44); the other belongs to an idle second player. 'Car' holds"
            " the cars, one per lane, moving horizontally (dx). Being hit pushes the chicken back"
            " down. UP (1) moves towards the top (smaller y, goal near y 20). A game lasts about "
            "2 minutes 16 seconds of play."
        ),
    ),
    Game(
        name="Asterix",
        ale_id="ALE/Asterix-v5",
        actions=(
            "NOOP",
            "UP",
            "RIGHT",
            "LEFT",
            "DOWN",
            "UPRIGHT",
            "UPLEFT",
            "DOWNRIGHT",
            "DOWNLEFT",
        ),
        single_categories=("Player",),
        list_categories=("Enemy", "Reward", "Consumable"),
        has_lives=True,
        summary=(
            "Move Asterix ('Player') between eight horizontal lanes to collect 'Consumable' and "
            "'Reward' items (points) that fly across the screen while avoiding the 'Enemy' lyres "
            "(touching one costs a life). You have 3 lives."
        ),
    ),
    Game(
        name="Enduro",
        ale_id="ALE/Enduro-v5",
        actions=(
            "NOOP",
            "FIRE",
            "RIGHT",
            "LEFT",
            "DOWN",
            "DOWNRIGHT",
            "DOWNLEFT",
            "RIGHTFIRE",
            "LEFTFIRE",
        ),
        single_categories=("Player",),
        list_categories=("Car",),
        has_lives=False,
        summary=(
            "Drive your race car ('Player', near the bottom, y about 144) and pass the other "
            "'Car's (+1 per car passed). FIRE (1) accelerates, DOWN (4) brakes, RIGHT/LEFT steer;"
            " collisions slow you down. Cars far up the road (small y) are far ahead."
        ),
    ),
    Game(
        name="Qbert",
        ale_id="ALE/Qbert-v5",
        actions=("NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN"),
        single_categories=("Player", "PurpleBall", "RedBall", "GreenBall", "Coily", "Sam"),
        list_categories=("Cube", "Disk"),
        has_lives=True,
        summary=(
            "Hop Q*bert ('Player') between the 21 'Cube's of the pyramid; landing on a cube "
            "changes its colour (+25) and colouring all of them completes the round. Jumps are "
            "diagonal: UP (2) = up-right, RIGHT (3) = down-right, LEFT (4) = up-left, DOWN (5) = "
            "down-left. Jumping off the pyramid, or touching 'Coily', 'PurpleBall' or 'RedBall', "
            "costs a life; 'GreenBall' freezes enemies, 'Sam' undoes colours and can be caught "
            "for points; a 'Disk' beside the pyramid carries you to the top. You have 4 lives."
        ),
    ),
    Game(
        name="Seaquest",
        ale_id="ALE/Seaquest-v5",
        actions=(
            "NOOP",
            "FIRE",
            "UP",
            "RIGHT",
            "LEFT",
            "DOWN",
            "UPRIGHT",
            "UPLEFT",
            "DOWNRIGHT",
            "DOWNLEFT",
            "UPFIRE",
            "RIGHTFIRE",
            "LEFTFIRE",
            "DOWNFIRE",
            "UPRIGHTFIRE",
            "UPLEFTFIRE",
            "DOWNRIGHTFIRE",
            "DOWNLEFTFIRE",
        ),
        single_categories=("Player", "SurfaceSubmarine", "PlayerMissile", "OxygenBar"),
        list_categories=("Shark", "Submarine", "Diver", "EnemyMissile", "CollectedDiver"),
        has_lives=True,
        summary=(
            "Steer your submarine ('Player') under water, shoot 'Shark's and enemy 'Submarine's "
            "(+20 each) with FIRE, and rescue 'Diver's by touching them. Oxygen runs out: the "
            "'OxygenBar' width w shrinks while submerged; surface (small y, about 46) to refill, "
            "ideally carrying six 'CollectedDiver's. Surfacing with none costs a life, as do "
            "collisions and running out of oxygen. You have 4 lives."
        ),
    ),
)

GAMES: dict[str, Game] = {game.name: game for game in _GAMES}


class UnknownGameError(ValueError):
    """Raised for a game name evocade does not support; the message lists the supported ones."""


def get_game(name: str) -> Game:
    """Look a game up by name, case-insensitively (`pong` and `Pong` are the same game)."""
    for game in _GAMES:
        if game.name.lower() == name.lower():
            return game
    raise UnknownGameError(f"unknown game {name!r}; supported: {', '.join(GAMES)}")
