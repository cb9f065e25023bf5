"""Run search: the filter language, checked against real runs of scikit-learn classifiers.

Most tests state the expected runs as a Python predicate over the `Run`
entities, so they hold whatever accuracy each classifier reaches.
"""

from __future__ import annotations

import math
import operator
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from postgres_server import fresh_database
from hypothesis import strategies as st

import mlkeep
from mlkeep.errors import FilterSyntaxError, InvalidInputError, NotFoundError
from mlkeep.store import Store
from mlkeep.tracking import search
from mlkeep.tracking.entities import Run
from mlkeep.tracking.filters import And, Compare, Key, Not, Or, OrderKey, Query, parse_filter, parse_order_by

Pred = Callable[[Run], bool]


def _train(store: Store) -> None:
    """Seven classifiers on two datasets, plus runs that lack keys, diverged, failed or still run."""
    from sklearn.datasets import load_digits, load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score, log_loss
    from sklearn.model_selection import train_test_split
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    models = [
        SGDClassifier(loss="log_loss", alpha=1e-3, fit_intercept=False, random_state=0),
        RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
        KNeighborsClassifier(n_neighbors=3),
        DecisionTreeClassifier(random_state=0),
        SVC(C=0.5),  # no predict_proba: its runs have no "val loss"
        LinearSVC(C=2.0),
        GaussianNB(),
    ]
    for dataset, loader in (("iris", load_iris), ("digits", load_digits)):
        x, y = loader(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
        for model in models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x_train, y_train)
            kind = type(model).__name__
            tags = {"team": "vision" if dataset == "digits" else "tabular", "source.type": "LOCAL"}
            with store.start_run(dataset, name=f"{dataset}-{kind}", tags=tags) as run:
                run.log_params({"model": kind, "dataset": dataset, **model.get_params()})
                run.log_metric("acc", float(model.score(x_test, y_test)))
                run.log_metric("train_acc", float(model.score(x_train, y_train)))
                run.log_metric("f1", float(f1_score(y_test, model.predict(x_test), average="macro")))
                if hasattr(model, "predict_proba"):
                    run.log_metric("val loss", float(log_loss(y_test, model.predict_proba(x_test))))
    with store.start_run("iris", name="diverged", tags={"team": "Tabular"}) as run:
        run.log_params({"model": "mlp_net", "lr-init": "1e-3", "C": "high"})
        run.log_metric("acc", math.nan)
        run.log_metric("f1", 0.0)
    with store.start_run("iris", name="tuning") as parent:
        with parent.start_run(name="tuning-child") as child:
            child.log_params({"model": "model_1", "n_neighbors": 7})
    with pytest.raises(ZeroDivisionError), store.start_run("digits", name="crashed") as run:
        run.log_params({"model": "a%b"})
        1 / 0
    store.start_run("scratch", name="still-running").set_tag("team", "vision")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The same runs in SQLite, and in PostgreSQL when MLKEEP_TEST_POSTGRES names a server."""
    if request.param == "sqlite":
        with mlkeep.open("memory://") as s:
            _train(s)
            yield s
        return
    server = os.environ.get("MLKEEP_TEST_POSTGRES")
    if not server:
        pytest.skip("set MLKEEP_TEST_POSTGRES=postgresql://user@host:port/db to search PostgreSQL too")
    with fresh_database(server) as url, mlkeep.open(url, objects=f"memory://{uuid.uuid4().hex}") as s:
        _train(s)
        yield s


@pytest.fixture(scope="module")
def all_runs(store: Store) -> list[Run]:
    with store.db.connect() as conn:
        ids = list(conn.exec_driver_sql("SELECT id FROM runs").scalars())
    return store.get_runs(ids)


def names(store: Store, filter: str = "", **kwargs: Any) -> list[str]:
    return [r.name for r in store.search_runs(filter, **kwargs)]


def matching(runs: list[Run], pred: Pred) -> set[str]:
    return {r.name for r in runs if pred(r)}


def metric(key: str) -> Callable[[Run], float | None]:
    """A metric's value, None when the run lacks it or it is NaN (which, like NULL, matches nothing)."""

    def get(r: Run) -> float | None:
        m = r.metrics.get(key)
        return None if m is None or math.isnan(m.value) else m.value

    return get


def number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def compares(get: Callable[[Run], Any], op: Callable[[Any, Any], bool], x: Any) -> Pred:
    return lambda r: get(r) is not None and op(get(r), x)


def param(key: str) -> Callable[[Run], str | None]:
    return lambda r: r.params.get(key)


# -- operators -----------------------------------------------------------------------------
CASES: list[tuple[str, Pred]] = [
    ("metrics.acc > 0.9", compares(metric("acc"), operator.gt, 0.9)),
    ("metrics.acc >= 0.9", compares(metric("acc"), operator.ge, 0.9)),
    ("metrics.acc < 0.9", compares(metric("acc"), operator.lt, 0.9)),
    ("metrics.acc <= 0.9", compares(metric("acc"), operator.le, 0.9)),
    ("metrics.f1 = 0", compares(metric("f1"), operator.eq, 0)),
    ("metrics.f1 == 0", compares(metric("f1"), operator.eq, 0)),
    ("metrics.f1 != 0", compares(metric("f1"), operator.ne, 0)),
    ("metrics.f1 <> 0", compares(metric("f1"), operator.ne, 0)),
    ("metrics.acc > -1e3", compares(metric("acc"), operator.gt, -1e3)),
    ("metrics.train_acc = 1.0", compares(metric("train_acc"), operator.eq, 1.0)),
    ("metrics.`val loss` < 0.5", compares(metric("val loss"), operator.lt, 0.5)),
    ('metrics."val loss" > .5', compares(metric("val loss"), operator.gt, 0.5)),
    ("params.model = 'SVC'", lambda r: r.params.get("model") == "SVC"),
    ('params.model = "SVC"', lambda r: r.params.get("model") == "SVC"),
    ("params.model != 'SVC'", lambda r: r.params.get("model", "SVC") != "SVC"),
    ("params.model > 'M'", lambda r: r.params.get("model", "") > "M"),
    # numbers compare as numbers; text like 'None' or 'high' never matches a number
    ("params.C < 1", compares(lambda r: number(param("C")(r)), operator.lt, 1)),
    ("params.C >= 1", compares(lambda r: number(param("C")(r)), operator.ge, 1)),
    ("params.C = 0.5", compares(lambda r: number(param("C")(r)), operator.eq, 0.5)),
    ("params.C != 0.5", compares(lambda r: number(param("C")(r)), operator.ne, 0.5)),
    ("params.max_depth > 3", compares(lambda r: number(param("max_depth")(r)), operator.gt, 3)),
    ("params.max_depth = 'None'", lambda r: r.params.get("max_depth") == "None"),
    ('params."lr-init" < 0.01', lambda r: r.name == "diverged"),
    ("params.fit_intercept = true", lambda r: r.params.get("fit_intercept") == "True"),
    ("params.fit_intercept = FALSE", lambda r: r.params.get("fit_intercept") == "False"),
    ("tags.team = 'vision'", lambda r: r.tags.get("team") == "vision"),
    ("tags.`source.type` = 'LOCAL'", lambda r: r.tags.get("source.type") == "LOCAL"),
    ("tags.team != 'vision'", lambda r: r.tags.get("team", "vision") != "vision"),
    # IN, with numbers, text, or both
    ("params.model IN ('SVC', 'GaussianNB')", lambda r: r.params.get("model") in ("SVC", "GaussianNB")),
    ("params.model not in ('SVC', 'GaussianNB',)", lambda r: r.params.get("model", "SVC") not in ("SVC", "GaussianNB")),
    ("params.n_neighbors in (3, 7)", lambda r: number(r.params.get("n_neighbors")) in (3, 7)),
    ("params.max_depth in (4, 'None')", lambda r: r.params.get("max_depth") in ("4", "None")),
    ("metrics.f1 in (0, 1)", compares(metric("f1"), lambda v, x: v in x, (0, 1))),
    ("attributes.name in ('diverged', 'crashed')", lambda r: r.name in ("diverged", "crashed")),
    # LIKE is case-sensitive on every database, ILIKE is not; \_ and \% are literal
    ("params.model LIKE '%Classifier'", lambda r: r.params.get("model", "").endswith("Classifier")),
    ("params.model like '%classifier'", lambda r: False),
    ("params.model ILIKE '%classifier'", lambda r: r.params.get("model", "").lower().endswith("classifier")),
    ("params.model NOT LIKE '%Classifier'", lambda r: not r.params.get("model", "Classifier").endswith("Classifier")),
    ("params.model not ilike '%CLASSIFIER'", lambda r: not r.params.get("model", "Classifier").endswith("Classifier")),
    ("params.model like 'model_1'", lambda r: r.params.get("model") in ("model_1",)),
    ("params.model like 'mlp_ne_'", lambda r: r.params.get("model") == "mlp_net"),
    ("params.model like 'mlp\\_%'", lambda r: r.params.get("model") == "mlp_net"),
    ("params.model like 'model\\_1'", lambda r: r.params.get("model") == "model_1"),
    ("params.model like '%\\%%'", lambda r: r.params.get("model") == "a%b"),
    ("params.model like 'a%'", lambda r: r.params.get("model") == "a%b"),
    ("tags.team ilike 'TAB%'", lambda r: r.tags.get("team", "").lower() == "tabular"),
    # IS NULL matches exactly the runs lacking the key; a NaN metric is present
    ("metrics.`val loss` IS NULL", lambda r: "val loss" not in r.metrics),
    ("metrics.acc is not null", lambda r: "acc" in r.metrics),
    ("params.n_neighbors IS NULL", lambda r: "n_neighbors" not in r.params),
    ("tags.team IS NOT NULL", lambda r: "team" in r.tags),
    ("end_time IS NULL", lambda r: r.end_time is None),
    ("attributes.parent_run_id IS NOT NULL", lambda r: r.parent_run_id is not None),
    # attributes, ours and MLflow's names
    ("attributes.status = 'FAILED'", lambda r: r.status == "FAILED"),
    ("status != 'FINISHED'", lambda r: r.status != "FINISHED"),
    ("attributes.run_name = 'diverged'", lambda r: r.name == "diverged"),
    ("attribute.name like 'iris-%'", lambda r: r.name.startswith("iris-")),
    ("attr.experiment = 'digits'", lambda r: r.experiment == "digits"),
    ("experiment_name != 'digits'", lambda r: r.experiment != "digits"),
    ("experiment ilike 'IR%'", lambda r: r.experiment == "iris"),
    ("attributes.start_time > 0", lambda r: True),
    ("end_time > 0", lambda r: r.end_time is not None),
    ("not end_time > 0", lambda r: r.end_time is None),
    ("creator is not null", lambda r: r.creator is not None),
    # keywords and prefixes in any case
    ("METRICS.acc > 0.9 AnD Params.model = 'SVC'",
     lambda r: (metric("acc")(r) or 0) > 0.9 and r.params.get("model") == "SVC"),
    ("metric.acc > 0.9 and param.model = 'SVC' and tag.team = 'vision'",
     lambda r: (metric("acc")(r) or 0) > 0.9 and r.params.get("model") == "SVC" and r.tags.get("team") == "vision"),
]


@pytest.mark.parametrize(("text", "pred"), CASES, ids=[c[0] for c in CASES])
def test_filter_matches_the_runs_python_says(store: Store, all_runs: list[Run], text: str, pred: Pred) -> None:
    assert set(names(store, text)) == matching(all_runs, pred)


def test_the_cases_are_not_vacuous(all_runs: list[Run]) -> None:
    """Most cases above must select some runs but not all, or they would prove little."""
    universal = {"attributes.start_time > 0", "creator is not null", "params.model like '%classifier'"}
    trivial = [text for text, pred in CASES if not 0 < len(matching(all_runs, pred)) < len(all_runs)]
    assert set(trivial) <= universal


def test_ids_and_experiment_ids(store: Store, all_runs: list[Run]) -> None:
    run = next(r for r in all_runs if r.name == "diverged")
    assert names(store, f"attributes.run_id = '{run.id}'") == ["diverged"]
    assert names(store, f"id = '{run.id}'") == ["diverged"]
    iris = matching(all_runs, lambda r: r.experiment == "iris")
    assert set(names(store, f"experiment_id = '{run.experiment_id}'")) == iris


def test_start_time_compares_as_a_number(store: Store, all_runs: list[Run]) -> None:
    middle = sorted(r.start_time for r in all_runs)[len(all_runs) // 2]
    assert set(names(store, f"start_time >= {middle}")) == matching(all_runs, lambda r: r.start_time >= middle)


# -- logic -------------------------------------------------------------------------------
def test_and_binds_tighter_than_or(store: Store, all_runs: list[Run]) -> None:
    a, b, c = "tags.team = 'tabular'", "metrics.acc > 0.95", "params.model = 'SVC'"
    pa, pb, pc = (lambda r: r.tags.get("team") == "tabular"), compares(metric("acc"), operator.gt, 0.95), (
        lambda r: r.params.get("model") == "SVC"
    )
    loose = set(names(store, f"{a} or {b} and {c}"))
    assert loose == matching(all_runs, lambda r: pa(r) or (pb(r) and pc(r)))
    assert loose == set(names(store, f"{a} or ({b} and {c})"))
    grouped = set(names(store, f"({a} or {b}) and {c}"))
    assert grouped == matching(all_runs, lambda r: (pa(r) or pb(r)) and pc(r))
    assert loose != grouped


def test_not_negates_including_runs_lacking_the_key(store: Store, all_runs: list[Run]) -> None:
    having = set(names(store, "metrics.`val loss` < 0.3"))
    assert set(names(store, "not metrics.`val loss` < 0.3")) == {r.name for r in all_runs} - having
    assert set(names(store, "NOT NOT metrics.`val loss` < 0.3")) == having
    assert set(names(store, "not (tags.team = 'vision' or status = 'FINISHED')")) == matching(
        all_runs, lambda r: r.tags.get("team") != "vision" and r.status != "FINISHED"
    )


def test_a_run_lacking_the_key_never_matches_a_comparison(store: Store) -> None:
    assert "tuning" not in names(store, "params.model != 'SVC'")
    assert "tuning" not in names(store, "params.model not in ('SVC')")
    assert "tuning" not in names(store, "params.model not like 'S%'")
    assert "diverged" not in names(store, "metrics.acc != 0.5")  # its acc is NaN


def test_empty_filter_returns_every_run(store: Store, all_runs: list[Run]) -> None:
    assert sorted(names(store, "")) == sorted(names(store, "   \n")) == sorted(r.name for r in all_runs)


# -- order and limit -------------------------------------------------------------------------
def test_default_order_is_newest_first_then_id(store: Store, all_runs: list[Run]) -> None:
    expected = [r.id for r in sorted(all_runs, key=lambda r: (-r.start_time, r.id))]
    assert [r.id for r in store.search_runs()] == expected


@pytest.mark.parametrize("descending", [True, False])
def test_order_by_metric_puts_runs_lacking_it_last(store: Store, all_runs: list[Run], descending: bool) -> None:
    found = store.search_runs(order_by=f"metrics.`val loss` {'DESC' if descending else 'asc'}")
    values = [metric("val loss")(r) for r in found]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=descending)
    assert values == present + [None] * (len(values) - len(present))
    assert len(found) == len(all_runs)


@pytest.mark.parametrize("limit", [1, 3, 10, 11, 16, 100])
def test_order_by_metric_pages_fill_from_runs_lacking_it(store: Store, all_runs: list[Run], limit: int) -> None:
    full = names(store, order_by="metrics.`val loss`")
    assert names(store, order_by="metrics.`val loss`", limit=limit) == full[:limit]


def test_order_by_param_sorts_numbers_numerically_then_text(store: Store) -> None:
    found = store.search_runs("params.max_depth is not null or params.C is not null", order_by="params.C")
    c = [r.params.get("C") for r in found]
    numeric = [v for v in c if number(v) is not None]
    assert [number(v) for v in numeric] == sorted(number(v) for v in numeric)  # type: ignore[type-var]
    assert c == numeric + sorted(v for v in c if v is not None and number(v) is None) + [None] * c.count(None)
    assert c[-1] is None and "high" in c


def test_order_by_several_keys_and_attributes(store: Store, all_runs: list[Run]) -> None:
    found = store.search_runs(order_by=["attributes.experiment", "metrics.acc DESC"])
    key = [(r.experiment, -(metric("acc")(r) or -math.inf)) for r in found]
    assert key == sorted(key)
    by_name = names(store, order_by="name DESC")
    assert by_name == sorted((r.name for r in all_runs), reverse=True)
    two_keys = names(store, order_by=["metrics.acc desc", "params.model"])
    assert names(store, order_by="metrics.acc desc, params.model") == two_keys


def test_order_and_limit_in_the_filter(store: Store) -> None:
    top = store.search_runs("metrics.acc > 0.5 ORDER BY metrics.acc DESC, name LIMIT 3")
    assert len(top) == 3
    assert [r.name for r in top] == names(store, "metrics.acc > 0.5", order_by="metrics.acc DESC, name", limit=3)
    assert [r.metrics["acc"].value for r in top] == sorted((r.metrics["acc"].value for r in top), reverse=True)
    assert len(names(store, "order by name limit 5", limit=2)) == 2  # the smaller limit wins
    assert len(names(store, "limit 4")) == 4


def test_order_given_twice_or_bad_limits_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        store.search_runs("order by name", order_by="metrics.acc")
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(InvalidInputError, match="positive integer"):
            store.search_runs(limit=bad)  # type: ignore[arg-type]


# -- experiments ----------------------------------------------------------------------------
def test_experiments_restrict_by_name_or_id(store: Store, all_runs: list[Run]) -> None:
    digits = store.get_experiment("digits")
    expected = matching(all_runs, lambda r: r.experiment in ("digits", "scratch"))
    assert set(names(store, experiments=["scratch", digits.id])) == expected
    assert set(names(store, experiments="scratch")) == {"still-running"}
    assert set(names(store, "tags.team = 'vision'", experiments=["scratch"])) == {"still-running"}
    assert names(store, experiments=[]) == []
    with pytest.raises(NotFoundError, match="nope"):
        store.search_runs(experiments=["iris", "nope"])


# -- only a page of ids leaves the database ------------------------------------------------------
def test_one_query_selects_the_page_and_only_the_page_is_loaded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[list[str]] = []
    real = search.get_runs
    def spy(db: Any, ids: list[str]) -> list[Run]:
        loaded.append(list(ids))
        return real(db, ids)

    monkeypatch.setattr(search, "get_runs", spy)
    statements: list[str] = []
    column = search._Compiled.column

    def record(self: Any, *args: Any) -> list[Any]:
        statements.append(self.sql)
        return column(self, *args)

    monkeypatch.setattr(search._Compiled, "column", record)
    found = store.search_runs("metrics.acc > 0.5 and params.model != 'SVC'", order_by="metrics.acc DESC", limit=2)
    assert len(found) == 2 and loaded == [[r.id for r in found]]
    # One query finds the page, testing the sorted metric on the value it sorts by (walking its index).
    assert len(statements) == 1 and "sort_0.value >" in statements[0]


# -- syntax errors ---------------------------------------------------------------------------
ERRORS = [
    ("metrics.acc 0.9", 12,
     "expected a comparison operator such as =, !=, <, >=, IN, LIKE, IS NULL after 'metrics.acc', but found '0.9'"),
    ("metrics.acc >", 13, "expected a value (a number or a quoted string) after '>', but the filter ends"),
    ("metrics.acc > 0.9 and", 21, "expected a key"),
    ("(metrics.acc > 0.9", 18, "')'"),
    ("metrics.acc > 0.9)", 17, "found ')'"),
    ("metrics.acc > 0.9 params.x = 1", 18, "expected AND, OR, ORDER BY, LIMIT or the end of the filter"),
    ("metrics.acc > 0.9 order metrics.acc", 24, "expected BY after 'order'"),
    ("params.x in (1,", 15, "expected a value"),
    ("params.x is 3", 12, "expected NOT or NULL after 'is'"),
    ("params.x = 'abc", 11, "quote ' opened here is never closed"),
    ("metrics.acc > 0.9 && params.x = 1", 18, "unexpected character '&'"),
    ("foo.bar = 1", 0, "unknown prefix 'foo'"),
    ("acc > 0.9", 0, "unknown key 'acc': write metrics.acc"),
    ("attributes.colour = 'red'", 11, "unknown attribute 'colour'"),
    ("params.x in ()", 12, "in needs at least one value"),
    ("params.x not in ( )", 16, "in needs at least one value"),
    ("params.x like 5", 14, "like needs a quoted pattern"),
    ("metrics.acc like '0.9%'", 12, "like compares text; metrics.acc is a number"),
    ("start_time ilike '17%'", 11, "ilike compares text"),
    ("metrics.acc = 'high'", 14, "metrics.acc is a number"),
    ("status = 1", 9, "attributes.status is text: quote the value"),
    ("end_time > true", 11, "attributes.end_time is a time"),
    ("metrics.acc > 0.9 limit 0", 24, "limit must be a positive integer"),
    ("metrics.acc > 0.9 limit 2.5", 24, "limit must be a positive integer"),
    ("metrics.acc > 0.9 order by metrics.acc desc asc", 44, "expected ',', limit or the end of the filter"),
]


@pytest.mark.parametrize(("text", "position", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_syntax_errors_name_the_position_and_what_was_expected(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    err = info.value
    assert err.position == position
    assert message.lower() in str(err).lower()
    assert f"column {position}" in str(err)
    lines = str(err).splitlines()
    assert lines[-2] == f"  {text}" and lines[-1] == "  " + " " * position + "^"


def test_search_raises_syntax_errors_and_bad_order_by(store: Store) -> None:
    with pytest.raises(FilterSyntaxError):
        store.search_runs("metrics.acc >> 1")
    with pytest.raises(FilterSyntaxError, match="unknown prefix|Unknown prefix"):
        store.search_runs(order_by="foo.bar DESC")
    with pytest.raises(FilterSyntaxError):
        store.search_runs(order_by="metrics.acc DOWN")


# -- the AST ------------------------------------------------------------------------------------
def test_parse_filter_gives_a_small_ast_for_mlflow_syntax() -> None:
    q = parse_filter("""metrics.acc > 0.9 AND params.model = "rf" and attributes.run_name = 'x'
                        ORDER BY metrics.acc DESC LIMIT 5""")
    assert q == Query(
        And((Compare(Key("metric", "acc"), ">", 0.9), Compare(Key("param", "model"), "=", "rf"),
             Compare(Key("attribute", "name"), "=", "x"))),
        (OrderKey(Key("metric", "acc"), descending=True),),
        5,
    )
    assert parse_filter("not (a.b = 1 or tags.t is null)".replace("a.b", "metrics.b")) == Query(
        Not(Or((Compare(Key("metric", "b"), "=", 1), Compare(Key("tag", "t"), "IS NULL"))))
    )
    assert parse_filter("params.`a b` in (1, 'x', true)").where == Compare(Key("param", "a b"), "IN", (1, "x", True))
    assert parse_filter("tags.x = 'it''s' or tags.x = \"say \\\"hi\\\"\"").where == Or(
        (Compare(Key("tag", "x"), "=", "it's"), Compare(Key("tag", "x"), "=", 'say "hi"'))
    )
    assert parse_filter("metrics.train/loss < 1e-3 and metrics.val.loss >= -2").where == And(
        (Compare(Key("metric", "train/loss"), "<", 0.001), Compare(Key("metric", "val.loss"), ">=", -2))
    )
    assert parse_order_by("metrics.acc DESC, start_time") == (
        OrderKey(Key("metric", "acc"), True), OrderKey(Key("attribute", "start_time"), False)
    )
    assert parse_filter("") == Query() and parse_order_by("  ") == ()


# -- property: SQL agrees with Python ---------------------------------------------------------------
METRIC_KEYS = ["acc", "f1", "train_acc", "val loss"]
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "!=": operator.ne}


def _comparison(key: str, op: str, x: float) -> tuple[str, Pred]:
    return f"metrics.`{key}` {op} {x!r}", compares(metric(key), OPS[op], x)


def _combine(kind: str, parts: list[tuple[str, Pred]]) -> tuple[str, Pred]:
    texts, preds = [t for t, _ in parts], [p for _, p in parts]
    if kind == "not":
        return f"NOT ({texts[0]})", lambda r: not preds[0](r)
    if kind == "and":
        return "(" + " AND ".join(texts) + ")", lambda r: all(p(r) for p in preds)
    return "(" + " OR ".join(texts) + ")", lambda r: any(p(r) for p in preds)


def _thresholds(all_runs: list[Run]) -> list[float]:
    """Exact stored values (to probe = and the edges of < and <=) plus a few round ones."""
    stored = {m.value for r in all_runs for m in r.metrics.values() if not math.isnan(m.value)}
    return sorted(stored | {0.0, 0.5, 0.9, 1.0})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sql_and_python_agree_on_random_filters(store: Store, all_runs: list[Run], data: st.DataObject) -> None:
    thresholds = st.sampled_from(_thresholds(all_runs))
    leaf = st.builds(_comparison, st.sampled_from(METRIC_KEYS), st.sampled_from(sorted(OPS)), thresholds)
    tree = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(_combine, st.just("not"), st.lists(inner, min_size=1, max_size=1)),
            st.builds(_combine, st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
        ),
        max_leaves=6,
    )
    text, pred = data.draw(tree)
    assert set(names(store, text)) == matching(all_runs, pred), text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_filter_on_the_sorted_metric_keeps_the_order_and_the_pages(store: Store, all_runs: list[Run],
                                                                      data: st.DataObject) -> None:
    """The filter's comparisons of the first sort key test the value the sort joins (see `search._split`):
    the runs, their order and every page are those of the sorted search, filtered."""
    thresholds = st.sampled_from(_thresholds(all_runs))
    key = data.draw(st.sampled_from(METRIC_KEYS))
    parts = data.draw(st.lists(st.builds(_comparison, st.just(key), st.sampled_from(sorted(OPS)), thresholds),
                               min_size=1, max_size=2))
    parts += data.draw(st.lists(st.builds(_comparison, st.sampled_from(METRIC_KEYS), st.sampled_from(sorted(OPS)),
                                          thresholds), max_size=1))
    text, pred = _combine("and", parts) if len(parts) > 1 else parts[0]
    order = f"metrics.`{key}` {data.draw(st.sampled_from(['ASC', 'DESC']))}"
    expected = [n for n in names(store, order_by=order) if n in matching(all_runs, pred)]
    assert names(store, text, order_by=order) == expected, text
    limit, offset = data.draw(st.integers(1, 5)), data.draw(st.integers(0, 6))
    assert names(store, text, order_by=order, limit=limit, offset=offset) == expected[offset:offset + limit], text
