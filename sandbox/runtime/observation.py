"""Turn OCAtari's object list into the plain `obs` dict of the policy contract (DESIGN.md §2).

Runs once per step on the harness side, so it is written for speed: one pass over the objects,
plain ints, no intermediate structures.
"""

from __future__ import annotations

from typing import Any


def build_observation(
    objects: list[Any],
    list_categories: frozenset[str],
    lives: int | None,
    at_reset: bool = False,
) -> dict[str, Any]:
    """Objects not on screen are left out; list categories are always present, maybe empty.

    `at_reset`: OCAtari measures (dx, dy) against the objects' placeholder positions on the
    first frame (e.g. dx=+140), so nothing has moved yet as far as the policy is told.
    """
    obs: dict[str, Any] = {category: [] for category in list_categories}
    for obj in objects:
        if obj is None:
            continue
        category = obj.category
        if category == "NoObject":
            continue
        entry = {
            "x": int(obj.x),
            "y": int(obj.y),
            "w": int(obj.w),
            "h": int(obj.h),
            "dx": 0 if at_reset else int(obj.dx),
            "dy": 0 if at_reset else int(obj.dy),
        }
        if category in list_categories:
            obs[category].append(entry)
        elif category not in obs:
            obs[category] = entry
    if lives is not None:
        obs["lives"] = int(lives)
    return obs
