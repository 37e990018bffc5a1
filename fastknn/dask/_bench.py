"""Figures of the Dask search, measured side by side in one run.

``python -m fastknn.dask._bench`` starts LocalClusters of two single-thread
worker processes on this machine and measures:

1. Fashion-MNIST-sized work: 60,000 training rows of 784 float32 features in
   4 shards, 10,000 queries in 4 blocks, k=5, Euclidean brute force: the
   cluster against fastknn in this process with 2 threads, interleaved
   rounds, identical results; the overhead per task (wall time times
   workers, less the tasks' own compute time, per task).
2. The same search after a worker process is killed mid-search.
3. A file-backed training set (``from_npy``) at least 4 times the workers'
   total memory limit: its time, the subset check against the in-memory
   search, each worker's peak resident memory.
4. One task's work for the cost model: one 1,000,000 x 128 shard against
   1,000 queries, k=10, one thread.

The training rows of (1) are the 5,000 packaged MNIST training digits,
tiled 12 times with small uniform noise (no exact duplicates); the queries
are the 10,000 MNIST test digits. Prints a report and writes JSON.
"""

import argparse
import contextlib
import json
import os
import signal
import tempfile
import time

import numpy as np

import fastknn
from fastknn.bench import interleaved_runs, paired_ratio
from fastknn.datasets import load_mnist


def peak_rss():
    """This process's peak resident memory, in bytes: ``VmHWM``, the high-water mark of its
    own address space (``ru_maxrss`` would also count the parent's, copied at fork, before exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def fashion_sized_data(n_train=60_000, n_queries=10_000, seed=0):
    """Tiled digits with noise as training rows, the MNIST test digits as queries (float32)."""
    digits, _ = load_mnist(return_X_y=True)
    digits = digits.astype(np.float32) / np.float32(255)
    base = digits[10_000:]
    rng = np.random.default_rng(seed)
    train = np.resize(base, (n_train, base.shape[1]))
    train += rng.random(train.shape, dtype=np.float32) * np.float32(0.01)
    queries = np.ascontiguousarray(np.resize(digits[:10_000], (n_queries, base.shape[1])))
    return train, queries


def task_overhead(client, run):
    """Run ``run()`` under a task stream: (wall seconds, tasks, overhead seconds per task)."""
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    compute = sum(
        part["stop"] - part["start"] for task in stream.data for part in task["startstops"] if part["action"] == "compute"
    )
    n_workers = len(client.scheduler_info()["workers"])
    return wall, len(stream.data), (wall * n_workers - compute) / max(1, len(stream.data))


def fashion_benchmark(client, train, queries, n_neighbors=5, n_shards=4, n_blocks=4, rounds=5):
    """Cluster against one process with 2 threads on the same search (see the module docstring)."""
    import dask
    import dask.array as da

    from fastknn.dask import kneighbors

    Y = da.from_array(train, chunks=(-(-len(train) // n_shards), -1)).persist()
    X = da.from_array(queries, chunks=(-(-len(queries) // n_blocks), -1)).persist()
    dask.compute(Y.sum(), X.sum())  # the data are on the workers before any timing

    def on_cluster():
        return dask.compute(*kneighbors(X, Y, n_neighbors))

    def in_process():
        return fastknn.kneighbors(queries, train, n_neighbors, n_jobs=2)

    on_cluster(), in_process()  # warm-up: kernels loaded everywhere
    times, results = interleaved_runs({"cluster": (on_cluster, rounds), "one process": (in_process, rounds)})
    identical = all(np.array_equal(a, b) for a, b in zip(results["cluster"], results["one process"]))
    wall, n_tasks, overhead = task_overhead(client, on_cluster)
    return {
        "train_shape": list(train.shape), "queries": len(queries), "n_neighbors": n_neighbors,
        "shards": n_shards, "query_blocks": n_blocks,
        "cluster_s": float(np.median(times["cluster"])), "one_process_s": float(np.median(times["one process"])),
        "ratio": paired_ratio(times, "cluster", "one process"),
        "cluster_runs_s": times["cluster"], "one_process_runs_s": times["one process"],
        "identical": identical, "tasks": n_tasks, "overhead_per_task_s": overhead, "traced_wall_s": wall,
    }, (X, Y, results["one process"])


def killed_worker_benchmark(client, X, Y, expected, n_neighbors=5):
    """The search again, a worker process killed once two search tasks have finished."""
    from fastknn.dask import kneighbors

    def finished_searches(dask_scheduler):
        return sum(1 for key, ts in dask_scheduler.tasks.items() if "search_shard" in str(key) and ts.state == "memory")

    start = time.perf_counter()
    futures = client.compute(list(kneighbors(X, Y, n_neighbors)))
    while client.run_on_scheduler(finished_searches) < 2:
        time.sleep(0.01)
    killed_mid_search = not all(f.done() for f in futures)
    os.kill(next(iter(client.run(os.getpid).values())), signal.SIGKILL)
    distances, indices = client.gather(futures)
    seconds = time.perf_counter() - start
    client.wait_for_workers(2, timeout=120)
    identical = np.array_equal(distances, expected[0]) and np.array_equal(indices, expected[1])
    return {"killed_mid_search": killed_mid_search, "identical": identical, "seconds": seconds}


def file_backed_benchmark(client, memory_limit, factor=4.0, n_features=128, rows_per_shard=100_000,
                          n_queries=100, n_neighbors=10, n_checked=10, directory=None):
    """A ``.npy`` training set of ``factor`` times the workers' total memory limit, searched from the file."""
    import dask

    from fastknn.dask import from_npy, kneighbors

    n_workers = len(client.scheduler_info()["workers"])
    n_rows = int(factor * memory_limit * n_workers) // (4 * n_features) + 1
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(dir=directory) as folder:
        path = os.path.join(folder, "train.npy")
        rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_features))
        for start in range(0, n_rows, 1_000_000):
            stop = min(start + 1_000_000, n_rows)
            rows[start:stop] = rng.random((stop - start, n_features), dtype=np.float32)
        rows.flush()
        queries = rng.random((n_queries, n_features), dtype=np.float32)
        start = time.perf_counter()
        distances, indices = dask.compute(*kneighbors(queries, from_npy(path, rows_per_shard), n_neighbors))
        seconds = time.perf_counter() - start
        expected_distances, expected_indices = fastknn.kneighbors(queries[:n_checked], rows, n_neighbors)
        identical = np.array_equal(distances[:n_checked], expected_distances) and np.array_equal(
            indices[:n_checked], expected_indices
        )
        size = os.path.getsize(path)
        del rows
    peaks = client.run(peak_rss)
    return {
        "file_bytes": size, "rows": n_rows, "n_features": n_features, "rows_per_shard": rows_per_shard,
        "memory_limit_per_worker": memory_limit, "workers": n_workers, "queries": n_queries,
        "n_neighbors": n_neighbors, "seconds": seconds, "identical_on_checked_queries": identical,
        "checked_queries": n_checked, "peak_worker_rss": sorted(peaks.values()),
    }


def one_task_benchmark(n_rows=1_000_000, n_features=128, n_queries=1_000, n_neighbors=10, repeats=3):
    """Seconds of one task's search (one thread), the cost model's unit of work."""
    from fastknn.dask._shards import Shard

    rng = np.random.default_rng(2)
    shard = Shard(rng.random((n_rows, n_features), dtype=np.float32), 0, "euclidean", None, "brute", n_neighbors)
    queries = rng.random((n_queries, n_features), dtype=np.float32)
    shard.search(queries[:10], n_neighbors, 1)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        shard.search(queries, n_neighbors, 1)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {
        "rows": n_rows, "n_features": n_features, "queries": n_queries, "n_neighbors": n_neighbors,
        "seconds": seconds, "ns_per_query_row": seconds / (n_rows * n_queries) * 1e9,
    }


@contextlib.contextmanager
def local_cluster(memory_limit):
    """A client of a LocalCluster of 2 single-thread worker processes, closed on exit."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=None,
        scheduler_port=0,
    ) as cluster, Client(cluster) as client:
        yield client


PARTS = ("fashion", "file_backed", "one_task")


def run(report, parts=PARTS, quick=False, directory=None, save=None):
    """The measurements named in ``parts`` into ``report``; ``quick`` shrinks them (a smoke run, not figures).

    ``save(report)`` is called after each part.
    """
    report.update(cpu_count=os.cpu_count())
    report.setdefault("load_average", {})
    # Compiled here first, so that the workers load the kernels from numba's cache.
    fastknn.kneighbors(np.zeros((2, 4), np.float32), np.ones((8, 4), np.float32), 2)
    if "fashion" in parts:
        report["load_average"]["fashion_start"] = os.getloadavg()
        train, queries = fashion_sized_data(600, 200) if quick else fashion_sized_data()
        with local_cluster("2GiB") as client:
            report["fashion"], (X, Y, expected) = fashion_benchmark(client, train, queries, rounds=2 if quick else 5)
            report["killed_worker"] = killed_worker_benchmark(client, X, Y, expected)
        report["load_average"]["fashion_end"] = os.getloadavg()
        save and save(report)
    if "file_backed" in parts:
        report["load_average"]["file_backed_start"] = os.getloadavg()
        memory_limit = 2**30
        with local_cluster(memory_limit) as client:
            factor = 0.02 if quick else 4.0
            report["file_backed"] = file_backed_benchmark(client, memory_limit, factor=factor, directory=directory)
        report["load_average"]["file_backed_end"] = os.getloadavg()
        save and save(report)
    if "one_task" in parts:
        report["one_task"] = one_task_benchmark(n_rows=20_000 if quick else 1_000_000, repeats=1 if quick else 3)
        save and save(report)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastknn.dask._bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run, not figures")
    parser.add_argument("--out", default="dask_bench.json", help="JSON report path")
    parser.add_argument("--tmp", default=None, help="folder for the file-backed training set")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run (default: all)")
    args = parser.parse_args(argv)

    def save(report):
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)

    report = run({}, args.parts.split(","), quick=args.quick, directory=args.tmp, save=save)
    print_report(report)


def print_report(report):
    """The figures of a report (the JSON of :func:`run`), as text."""
    if "fashion" in report:
        print_fashion(report["fashion"], report["killed_worker"])
    if "file_backed" in report:
        files = report["file_backed"]
        print(f"File-backed: {files['file_bytes'] / 2**30:.2f} GiB for 2 workers of "
              f"{files['memory_limit_per_worker'] / 2**20:.0f} MiB, {files['seconds']:.1f} s, identical on "
              f"{files['checked_queries']} queries: {files['identical_on_checked_queries']}, peak worker RSS "
              + ", ".join(f"{peak / 2**20:.0f} MiB" for peak in files["peak_worker_rss"]))
    if "one_task" in report:
        task = report["one_task"]
        print(f"One task: {task['rows']} x {task['n_features']} shard, {task['queries']} queries, "
              f"k={task['n_neighbors']}, 1 thread: {task['seconds']:.2f} s "
              f"({task['ns_per_query_row']:.3f} ns per query-row)")
    print(f"Load averages: {report['load_average']}")


def print_fashion(fashion, killed):
    """The Fashion-MNIST-sized figures and the killed worker's, as text."""
    print(f"Fashion-MNIST-sized search ({fashion['train_shape'][0]} x {fashion['train_shape'][1]}, "
          f"{fashion['queries']} queries, k={fashion['n_neighbors']}), medians of interleaved runs:")
    print(f"  cluster of 2 single-thread workers  {fashion['cluster_s']:.3f} s")
    print(f"  one process, 2 threads              {fashion['one_process_s']:.3f} s")
    print(f"  ratio (median of paired rounds)     {fashion['ratio']:.2f}   identical: {fashion['identical']}")
    print(f"  {fashion['tasks']} tasks, overhead per task {1e3 * fashion['overhead_per_task_s']:.1f} ms")
    print(f"Worker killed mid-search: {killed['killed_mid_search']}, identical: {killed['identical']}, "
          f"{killed['seconds']:.2f} s")


if __name__ == "__main__":
    main()
