"""Scale-out task runners for `run.task_runner=dask|ray` (the `cluster` extra), local or remote.

A local cluster's worker processes would not know the Prefect API of the process that started
them when that API is Prefect's temporary (ephemeral) server: each would start a server of its
own (about 15 s each here) and record its task runs there. So a local cluster is created inside
the flow run, when that API is up, and its workers are given its URL. Workers of a remote
cluster (`run.dask_address`, `run.ray_address`) must reach a real Prefect server themselves
(PREFECT_API_URL in their environment).

Nothing here imports prefect-dask or prefect-ray at module level: flows/sharding.py imports the
one chosen, and turns a missing package into a clear message naming the extra.
"""
from __future__ import annotations

from typing import Any

from prefect import get_client


def current_api_url() -> str:
    """The API this process talks to, also when it is Prefect's temporary server."""
    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


def local_dask_cluster(**kwargs: Any):
    """`distributed.LocalCluster(**kwargs)` whose worker processes report to this process's API
    (DaskTaskRunner calls it when the flow submits its first task)."""
    from distributed import LocalCluster

    if kwargs.get("processes", True):
        env = dict(kwargs.pop("env", None) or {})
        env.setdefault("PREFECT_API_URL", current_api_url())
        kwargs["env"] = env
    return LocalCluster(**kwargs)


def dask_task_runner(address: str | None, n_workers: int, processes: bool):
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    # one thread per worker: a shard holds its model, and the parallelism is the shards
    kwargs = {"n_workers": n_workers, "threads_per_worker": 1, "processes": processes}
    return DaskTaskRunner(cluster_class=local_dask_cluster, cluster_kwargs=kwargs)


def ray_task_runner(address: str | None, num_cpus: int):
    from prefect_ray import RayTaskRunner

    class LocalRayTaskRunner(RayTaskRunner):
        """Starts a local Ray instance whose workers report to this process's Prefect API."""

        def __enter__(self):
            runtime_env = dict(self.init_kwargs.get("runtime_env") or {})
            env_vars = {"PREFECT_API_URL": current_api_url(), **(runtime_env.get("env_vars") or {})}
            self.init_kwargs["runtime_env"] = runtime_env | {"env_vars": env_vars}
            return super().__enter__()

    if address:
        return RayTaskRunner(address=address)
    return LocalRayTaskRunner(init_kwargs={"num_cpus": num_cpus, "include_dashboard": False})
