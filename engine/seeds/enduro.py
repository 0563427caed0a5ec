# Starter policy for Enduro: accelerate, steer away from the closest car ahead.
def act(obs):
    player = obs.get("Player")
    cars = obs["Car"]
    if player is None or not cars:
        return 1
    ahead = max(cars, key=lambda car: car["y"])
    if abs(ahead["x"] - player["x"]) < 16:
        return 7 if ahead["x"] <= player["x"] else 8
    return 1
