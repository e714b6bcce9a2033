"""Training data: CSV reading, task inference, fixed-seed splits, recorded sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnxops.errors import UserInputError
from onnxops.pipeline import data, train


def test_builtin_data_sets_load_with_their_task() -> None:
    for name, (_, task) in data.BUILTIN.items():
        ds = data.load_builtin(name)
        assert ds.task_hint == task
        assert ds.X.shape == (len(ds.y), len(ds.feature_names))
        assert len(set(ds.feature_names)) == len(ds.feature_names)


def test_split_is_fixed_by_the_seed_and_sizes_are_recorded() -> None:
    ds = data.load_builtin("wine")
    y = data.labels_for("classification", ds.y)

    a = data.split(ds, "classification", y, test_size=0.25, seed=7)
    b = data.split(ds, "classification", y, test_size=0.25, seed=7)
    c = data.split(ds, "classification", y, test_size=0.25, seed=8)

    assert np.array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)
    assert (a.info.rows, a.info.train_rows, a.info.test_rows) == (178, 133, 45)
    assert a.info.stratified


def test_csv_target_decides_the_task(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,cls,price\n" + "".join(f"{i},{i % 3},{i * 1.25 + 0.1}\n" for i in range(30)))

    labels = train.train(data.load_csv(path, "cls"), "random_forest", params={"n_estimators": 3})
    values = train.train(data.load_csv(path, "price"), "random_forest", params={"n_estimators": 3})

    assert labels.record.task == "classification" and labels.record.classes == [0, 1, 2]
    assert values.record.task == "regression" and values.record.classes is None
    assert labels.record.feature_names == ["x", "price"]


def test_work_dir_round_trips(tmp_path: Path) -> None:
    run = train.train(data.load_builtin("iris"), "svc")
    train.save(run, tmp_path / "w")

    back = train.load(tmp_path / "w")

    assert back.record == run.record
    assert np.array_equal(back.split.X_test, run.split.X_test)
    assert np.array_equal(
        back.estimator.predict(back.split.X_test), run.estimator.predict(run.split.X_test)
    )


def test_params_parse_as_json_or_int_tuples() -> None:
    from onnxops.pipeline.algorithms import parse_params

    assert parse_params(
        ["max_iter=50", "hidden_layer_sizes=32,16", "solver=adam", "alpha=1e-3"]
    ) == {
        "max_iter": 50,
        "hidden_layer_sizes": (32, 16),
        "solver": "adam",
        "alpha": 0.001,
    }
    with pytest.raises(UserInputError):
        parse_params(["novalue"])
