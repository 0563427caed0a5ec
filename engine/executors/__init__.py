"""Where episodes run besides the local warm pool: a Ray cluster (`--executor ray`, #15).

    from engine.executors import open_ray_runner
    runner = open_ray_runner("127.0.0.1:6379", "bwrap", limits)   # an EpisodeRunner

Importing this package never imports Ray: only opening a runner (or a cluster report) does,
and without Ray installed that raises `RayUnavailable` with the line that says how to get it.
"""

from engine.executors.ray_cluster import RAY_MISSING, RayUnavailable, cluster_report
from engine.executors.ray_runner import RayRunner, open_ray_runner

__all__ = ["RAY_MISSING", "RayRunner", "RayUnavailable", "cluster_report", "open_ray_runner"]
