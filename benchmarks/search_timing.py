"""Time `search_runs` over 10,000 runs (10 params, 5 metrics, 2 tags each) on SQLite.

Rows are bulk-inserted (creating 10,000 runs through the API would take minutes);
the search itself is the real call. Prints the median of several searches and
SQLite's plan for the id query.

    .venv/bin/python benchmarks/search_timing.py [N_RUNS]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time

from collections.abc import Callable

from sqlalchemy import event, select, text

import mlkeep
from mlkeep.metadata.tables import experiments, latest_metrics, params, runs, tags
from mlkeep.tracking import filters, search

FILTERS = [
    "metrics.acc > 0.5 and params.model = 'rf' and params.lr < 0.05 ORDER BY metrics.acc DESC LIMIT 100",
    "metrics.acc > 0.9 or tags.team = 'vision' ORDER BY metrics.loss LIMIT 100",
    "params.depth >= 5 and not params.model in ('svm', 'knn') ORDER BY params.lr DESC LIMIT 100",
    "ORDER BY metrics.acc DESC LIMIT 100",
]


def populate(store: mlkeep.Store, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with store.db.begin() as conn:
        conn.execute(experiments.insert(), [{"id": "e1", "name": "bench", "creation_time": 0}])
        run_rows, param_rows, metric_rows, tag_rows = [], [], [], []
        for i in range(n):
            rid = f"run{i:06d}"
            run_rows.append({"id": rid, "experiment_id": "e1", "name": f"r{i}", "status": "FINISHED",
                             "start_time": 1_700_000_000_000 + i * 1000, "end_time": 1_700_000_000_500 + i * 1000})
            p = {"model": rng.choice(["rf", "svm", "knn", "gbm", "mlp"]), "lr": str(10 ** rng.uniform(-4, 0)),
                 "depth": str(rng.randint(1, 12)), "seed": str(i)}
            p.update({f"p{j}": f"v{rng.randint(0, 50)}" for j in range(6)})
            param_rows += [{"run_id": rid, "key": k, "value": v} for k, v in p.items()]
            for k in ("acc", "loss", "f1", "precision", "recall"):
                v = rng.random()
                metric_rows.append({"run_id": rid, "key": k, "value": v, "step": 9, "timestamp": 0,
                                    "min_value": v, "max_value": v, "count": 10})
            tag_rows += [{"run_id": rid, "key": "team", "value": rng.choice(["vision", "nlp", "tabular"])},
                         {"run_id": rid, "key": "git", "value": f"{rng.getrandbits(40):x}"}]
        for table, rows in ((runs, run_rows), (params, param_rows), (latest_metrics, metric_rows), (tags, tag_rows)):
            conn.execute(table.insert(), rows)
        conn.execute(text("ANALYZE"))


def timed(fn: Callable[[], object], repeat: int = 21) -> tuple[float, float]:
    """Median and best milliseconds of `repeat` calls, after one warm-up call (parser, page cache).

    The best is shown too because other processes on a shared machine only ever add time."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, min(times) * 1000


def page_ids(store: mlkeep.Store, f: str) -> list[str]:
    """What `search_runs` asks the database, without loading the runs."""
    query = filters.parse_filter(f)
    where = query.where and search._where(query.where, store.db.dialect)
    base = select(runs.c.id) if where is None else select(runs.c.id).where(where)
    with store.db.connect() as conn:
        return search._page(conn, base, query.order_by, query.limit, store.db.dialect)


def explain(store: mlkeep.Store, f: str) -> None:
    """SQLite's plan for each statement `search_runs` executes."""
    statements: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        statements.append((statement, parameters))

    event.listen(store.db.engine, "before_cursor_execute", record)
    page_ids(store, f)
    event.remove(store.db.engine, "before_cursor_execute", record)
    print(f)
    with store.db.engine.connect() as conn:
        for statement, parameters in statements:
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters):  # type: ignore[arg-type]
                print("   ", row[-1])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        store = mlkeep.init(tmp)  # a folder: SQLite file + object folder, as users have it
        populate(store, n)
        for f in FILTERS:
            (total, best), (ids, ids_best) = timed(lambda: store.search_runs(f)), timed(lambda: page_ids(store, f))
            print(f"{total:6.1f} ms (best {best:5.1f}) search_runs, {ids:5.1f} ms (best {ids_best:5.1f}) ids query: {f}")
        print()
        for f in FILTERS:
            explain(store, f)
        store.close()


if __name__ == "__main__":
    main()
