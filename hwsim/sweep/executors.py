"""Where sweep chunks run: in this process, a local process pool, or a Dask cluster.

Why: a sweep point is cheap (one warm-started ILP solve on a reused Φ table), so the unit of work
is a *chunk* of neighbouring points of one family (same target/model/bits): the Φ table is built
once per chunk and each solve warm-starts from its neighbour. Chunks are independent, so any
executor can run them; results stream back as chunks finish and are journalled at once.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator

from hwsim.errors import HwsimError
from hwsim.sweep.spec import Point

ChunkFn = Callable[[list[Point], dict], list[dict]]


def chunk_points(points: list[Point], chunk_size: int) -> list[list[Point]]:
    """Group by family, keep spec order inside a family (neighbouring budgets), then cut."""
    families: dict[tuple, list[Point]] = {}
    for p in points:
        families.setdefault(p.family, []).append(p)
    chunks = []
    for members in families.values():
        for i in range(0, len(members), chunk_size):
            chunks.append(members[i:i + chunk_size])
    return chunks


def run_inline(fn: ChunkFn, chunks: list[list[Point]], ctx: dict) -> Iterator[list[dict]]:
    for chunk in chunks:
        yield fn(chunk, ctx)


def run_local(fn: ChunkFn, chunks: list[list[Point]], ctx: dict, workers: int) -> Iterator[list[dict]]:
    if workers <= 1 or len(chunks) <= 1:
        yield from run_inline(fn, chunks, ctx)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = {pool.submit(fn, chunk, ctx) for chunk in chunks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()


def run_dask(fn: ChunkFn, chunks: list[list[Point]], ctx: dict, workers: int,
             scheduler: str | None) -> Iterator[list[dict]]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise HwsimError("--executor dask needs dask.distributed: pip install 'hwsim[dask]'") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as err:
            raise HwsimError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({err}); "
                             "check the address or omit --scheduler for a LocalCluster") from None
    else:
        cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(fn, chunk, ctx, pure=False) for chunk in chunks]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_chunks(fn: ChunkFn, chunks: list[list[Point]], ctx: dict, *, executor: str, workers: int,
               scheduler: str | None = None) -> Iterable[list[dict]]:
    if executor == "local":
        return run_local(fn, chunks, ctx, workers)
    if executor == "dask":
        return run_dask(fn, chunks, ctx, workers, scheduler)
    if executor == "inline":
        return run_inline(fn, chunks, ctx)
    raise HwsimError(f"--executor {executor!r}: choose local or dask")
