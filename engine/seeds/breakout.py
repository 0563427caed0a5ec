# Starter policy for Breakout: launch the ball and drift towards it.
MARGIN = 10


def act(obs):
    player = obs.get("Player")
    ball = obs.get("Ball")
    if ball is None:
        return 1
    if player is None:
        return 0
    diff = ball["x"] - (player["x"] + player["w"] / 2)
    if diff > MARGIN:
        return 2
    if diff < -MARGIN:
        return 3
    return 0
