# Starter policy for Pong: follow the ball, but only roughly.
REACTION = 12


def act(obs):
    player = obs.get("Player")
    ball = obs.get("Ball")
    if player is None or ball is None:
        return 0
    diff = ball["y"] - player["y"]
    if diff < -REACTION:
        return 2
    if diff > REACTION:
        return 3
    return 0
