"""`mlkeep runs search`: a table of matching runs, or JSON."""

from __future__ import annotations

from cli_support import IrisStore


def test_search_everything(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("runs", "search")
    assert result.exit_code == 0
    for name in ("rf", "logreg", "broken"):
        assert name in result.stdout
    for column in ("id", "experiment", "status", "start", "duration", "params.model", "metrics.acc"):
        assert column in result.stdout, column
    assert "3 runs" in result.stdout


def test_search_filter_order_limit_json(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    found = cli("runs", "search", "attributes.status = 'FINISHED'", "--order-by", "metrics.acc DESC", "--json").json()
    assert {r["name"] for r in found} == {"rf", "logreg"}
    accs = [r["metrics"]["acc"]["value"] for r in found]
    assert accs == sorted(accs, reverse=True)
    top = cli("runs", "search", "--order-by", "metrics.acc DESC", "--limit", "1", "--json").json()
    assert len(top) == 1 and top[0]["id"] == found[0]["id"]


def test_search_by_param_and_experiment(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    found = cli("runs", "search", "params.model = 'rf'", "--experiment", "iris", "--json").json()
    assert [r["id"] for r in found] == [iris_store.runs["rf"]]
    unknown = cli("runs", "search", "--experiment", "no-such-experiment", "--json")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("error: ") and unknown.stderr.count("\n") == 1


def test_search_table_puts_filtered_keys_first(cli, iris_store: IrisStore) -> None:  # type: ignore[no-untyped-def]
    result = cli("runs", "search", "params.model != 'svm'", "--order-by", "metrics.loss")
    assert result.exit_code == 0
    header = next(line for line in result.stdout.splitlines() if "params." in line)
    assert header.index("params.model") < header.index("params.C")
    assert header.index("metrics.loss") < header.index("metrics.acc")


def test_malformed_filter_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("runs", "search", "metrics.acc >")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
