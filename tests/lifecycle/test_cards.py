"""Model cards and the registry CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mlkeep.cli.main import app


def test_card_says_what_the_store_knows(iris_models: Any) -> None:
    s = iris_models.store
    for m in iris_models.models:
        s.registry.register("iris-clf", m.id)
    s.registry.update_model("iris-clf", description="Tells iris species apart from flower measurements.")
    s.registry.set_alias("iris-clf", "production", 2, reason="better accuracy")
    card = s.registry.model_card("iris-clf")
    assert card.startswith("# Model card: iris-clf version 2")
    for expected in ("production", "Tells iris species apart", "| C | 10.0 |", "accuracy", "sepal length (cm)",
                     "Confusion matrix", "| setosa | 50 |", "## Lineage", "| dataset | iris |", "better accuracy",
                     "## Environment", "python"):
        assert expected in card, expected
    assert "| C | 0.05 |" in s.registry.model_card("iris-clf", 1)


def test_cli_wraps_the_registry(folder_store: Any, iris: Any, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    with folder_store.start_run() as run:
        ds = run.log_dataset(X, "iris", targets=y)
        m = run.log_model(LogisticRegression(max_iter=500).fit(X, y), trained_on=ds)
    cli = CliRunner()
    base = ["--store", str(tmp_path)]
    r = cli.invoke(app, [*base, "registry", "register", "iris-clf", m.id, "--tag", "team=botany"])
    assert r.exit_code == 0 and "version 1" in r.output, r.output
    assert cli.invoke(app, [*base, "registry", "alias", "iris-clf", "production", "1", "--reason", "go"]).exit_code == 0
    assert "production" in cli.invoke(app, [*base, "registry", "show", "iris-clf"]).output
    assert "iris-clf" in cli.invoke(app, [*base, "registry", "list"]).output
    assert "go" in cli.invoke(app, [*base, "registry", "history", "iris-clf"]).output
    out = tmp_path / "card.md"
    assert cli.invoke(app, [*base, "registry", "card", "iris-clf", "-o", str(out)]).exit_code == 0
    assert "# Model card: iris-clf version 1" in out.read_text()
    assert cli.invoke(app, [*base, "registry", "unalias", "iris-clf", "production"]).exit_code == 0
    r = cli.invoke(app, [*base, "registry", "alias", "iris-clf", "production", "9"])
    assert r.exit_code == 1 and "no version 9" in r.output
