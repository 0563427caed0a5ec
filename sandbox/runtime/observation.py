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
) -> dict[str, Any]:
    """Objects not on screen are left out; list categories are always present, maybe empty."""
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
            "dx": int(obj.dx),
            "dy": int(obj.dy),
        }
        if category in list_categories:
            obs[category].append(entry)
        elif category not in obs:
            obs[category] = entry
    if lives is not None:
        obs["lives"] = int(lives)
    return obs
