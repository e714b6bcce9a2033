"""The pipeline's command line, driven through `onnxops.cli.main` as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from onnxops.cli import main

IRIS_LR = ["--dataset", "iris", "--algorithm", "logistic_regression"]


def _csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _continuous(tmp_path: Path) -> str:
    rows = "\n".join(f"{i},{i * 0.37 % 5:.3f},{i * 1.5 + 0.25:.2f}" for i in range(40))
    return _csv(tmp_path, "continuous.csv", "a,b,price\n" + rows + "\n")


def _numeric(tmp_path: Path, extra: str = "") -> str:
    rows = "\n".join(f"{i},{i % 7},{i % 2}" for i in range(40))
    return _csv(tmp_path, "ok.csv", "a,b,y\n" + rows + "\n" + extra)


# name -> (argv builder, a phrase the one error line must contain)
BAD_INPUT = {
    "missing file": (lambda t: ["--csv", str(t / "nope.csv"), "--target", "y"], "no such file"),
    "no target column": (lambda t: ["--csv", _numeric(t), "--target", "label"], "not in"),
    "semicolon-separated": (
        lambda t: ["--csv", _csv(t, "semi.csv", "a;y\n1;0\n2;1\n"), "--target", "y"],
        "read as comma-separated, not ';'-separated",
    ),
    "non-numeric column": (
        lambda t: [
            "--csv",
            _csv(t, "text.csv", "a,color,y\n1,red,0\n2,blue,1\n3,red,0\n4,blue,1\n"),
            "--target",
            "y",
        ],
        "non-numeric",
    ),
    "logistic on continuous target": (
        lambda t: ["--csv", _continuous(t), "--target", "price"],
        "continuous",
    ),
    "empty file": (lambda t: ["--csv", _csv(t, "empty.csv", ""), "--target", "y"], "empty"),
    "header only": (
        lambda t: ["--csv", _csv(t, "header.csv", "a,b,y\n"), "--target", "y"],
        "no data rows",
    ),
    "one class": (
        lambda t: [
            "--csv",
            _csv(t, "one.csv", "a,y\n" + "".join(f"{i},1\n" for i in range(20))),
            "--target",
            "y",
        ],
        "one class only (1);",  # the label as written, not numpy's repr
    ),
    "missing values": (
        lambda t: [
            "--csv",
            _csv(
                t,
                "gaps.csv",
                "a,b,y\n" + "".join(f"{i},{'' if i == 3 else i},{i % 2}\n" for i in range(20)),
            ),
            "--target",
            "y",
        ],
        "missing",
    ),
    "ragged rows": (lambda t: ["--csv", _numeric(t, "1,2\n"), "--target", "y"], "fields"),
    "unknown data set": (lambda t: ["--dataset", "mnist"], "unknown data set"),
    "both sources": (
        lambda t: ["--dataset", "iris", "--csv", _numeric(t), "--target", "y"],
        "exactly one",
    ),
    "csv without target": (lambda t: ["--csv", _numeric(t)], "--target"),
    "bad param": (lambda t: ["--dataset", "iris", "--param", "no_such_setting=3"], "--param"),
    "bad test size": (lambda t: ["--dataset", "iris", "--test-size", "1.5"], "--test-size"),
    "NaN in the target": (
        lambda t: [
            "--csv",
            _csv(
                t,
                "nan.csv",
                "a,y\n" + "".join(f"{i},{'nan' if i == 5 else i % 2}\n" for i in range(20)),
            ),
            "--target",
            "y",
        ],
        "missing (NaN) or infinite values in 1 row",
    ),
    "feature beyond float32": (
        lambda t: ["--csv", _numeric(t, "1e39,1,0\n"), "--target", "y"],
        "float32 range",
    ),
    "regression target beyond float32": (
        lambda t: [
            "--csv",
            _csv(
                t,
                "big.csv",
                "a,y\n" + "".join(f"{i},{1e300 if i == 0 else i * 2.5}\n" for i in range(20)),
            ),
            "--target",
            "y",
            "--algorithm",
            "linear_regression",
        ],
        "target values beyond the float32 range",
    ),
    "class label beyond int64": (
        lambda t: [
            "--csv",
            _csv(
                t, "ids.csv", "a,y\n" + "".join(f"{i},{1e19 if i % 2 else 0}\n" for i in range(20))
            ),
            "--target",
            "y",
        ],
        "beyond the int64 range",
    ),
    "bad model name": (lambda t: ["--dataset", "iris", "--name", "my model"], "bad model name"),
    "empty version": (lambda t: ["--dataset", "iris", "--version", ""], "bad --version ''"),
    "work dir inside the bundle": (
        lambda t: ["--dataset", "iris", "--work", str(t / "bundle" / "work")],
        "--work must be outside",
    ),
}
WRONG_ALGORITHM = {
    "unknown algorithm": (["--dataset", "iris", "--algorithm", "xgboost"], "unknown algorithm"),
    "regression on a classification set": (
        ["--dataset", "iris", "--algorithm", "linear_regression"],
        "classification data set",
    ),
    "classification on a regression set": (
        ["--dataset", "diabetes", "--algorithm", "svc"],
        "regression data set",
    ),
    "task against algorithm": (
        ["--dataset", "iris", "--algorithm", "logistic_regression", "--task", "regression"],
        "does classification",
    ),
    "gate of the other task": ([*IRIS_LR, "--min-r2", "0.5"], "regression models only"),
    "unknown technique": ([*IRIS_LR, "--optimize", "--only", "int4"], "unknown technique"),
    "techniques without --optimize": ([*IRIS_LR, "--only", "int8"], "add --optimize"),
}


def _assert_one_clean_line(capsys: pytest.CaptureFixture[str], phrase: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert phrase in lines[0]


def _assert_nothing_left(tmp_path: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging dirs


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_data_is_one_line_exit_2_and_no_bundle(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, phrase = BAD_INPUT[case]
    data_args = argv(tmp_path)
    algorithm = [] if "--algorithm" in data_args else ["--algorithm", "logistic_regression"]
    out = tmp_path / "bundle"

    rc = main(["build", *data_args, *algorithm, "--out", str(out), "--optimize"])

    assert rc == 2
    _assert_one_clean_line(capsys, phrase)
    _assert_nothing_left(tmp_path, out)


@pytest.mark.parametrize("case", sorted(WRONG_ALGORITHM))
def test_bad_choices_are_one_line_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, phrase = WRONG_ALGORITHM[case]
    out = tmp_path / "bundle"

    rc = main(["build", *argv, "--out", str(out)])

    assert rc == 2
    _assert_one_clean_line(capsys, phrase)
    _assert_nothing_left(tmp_path, out)


def test_unknown_option_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["build", *IRIS_LR, "--colour", "red", "--out", str(tmp_path / "b")])

    assert exit_info.value.code == 2
    _assert_one_clean_line(capsys, "unrecognized arguments")


def test_steps_one_by_one_with_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work, bundle = tmp_path / "work", tmp_path / "iris-bundle"

    assert main(["train", *IRIS_LR, "--work", str(work), "--json", "--quiet"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["data"]["train_rows"] == 120 and trained["data"]["test_rows"] == 30

    assert main(["validate", str(work), "--min-accuracy", "0.9", "--json"]) == 0
    validated = json.loads(capsys.readouterr().out)
    assert validated["metrics"]["accuracy"] >= 0.9
    assert validated["gates_missed"] == []

    assert (
        main(["export", str(work), "--out", str(bundle), "--version", "3", "--json", "--quiet"])
        == 0
    )
    exported = json.loads(capsys.readouterr().out)
    assert exported["version"] == "3"
    assert exported["parity"]["passed"] is True

    assert (
        main(
            [
                "optimize",
                str(work),
                "--bundle",
                str(bundle),
                "--only",
                "int8,pruned",
                "--json",
                "--quiet",
            ]
        )
        == 0
    )
    optimized = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in optimized["variants"]] == ["default", "int8", "pruned"]

    assert main(["inspect", str(bundle)]) == 0
    shown = capsys.readouterr().out
    assert "iris version 3" in shown and "confusion matrix" in shown
    # The drift baseline is shown too: one row per feature, in input order.
    stats = shown.split("training statistics per feature:")[1].split("\n\n")[0]
    rows = [line.split("  ")[0] for line in stats.strip().splitlines()[2:]]
    assert rows == [s["name"] for s in optimized["feature_stats"]]
    assert "sepal length (cm)" in rows[0]


def test_missed_gate_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    assert main(["train", *IRIS_LR, "--work", str(work), "--quiet"]) == 0
    capsys.readouterr()

    rc = main(["validate", str(work), "--min-accuracy", "0.99", "--min-f1", "0.5"])

    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "accuracy 0.9333 < 0.99 (short by 0.0567)" in err[0]


def test_build_with_a_missed_gate_leaves_no_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"

    rc = main(
        [
            "build",
            "--dataset",
            "diabetes",
            "--algorithm",
            "linear_regression",
            "--max-rmse",
            "1",
            "--out",
            str(out),
        ]
    )

    assert rc == 1
    assert "rmse" in capsys.readouterr().err
    assert not out.exists()


def test_inspect_flags_a_tampered_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    assert main(["build", *IRIS_LR, "--out", str(out), "--quiet"]) == 0
    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes() + b"\0")
    capsys.readouterr()

    assert main(["inspect", str(out)]) == 1
    assert "sha256 differs" in capsys.readouterr().err


def test_not_a_work_dir_or_bundle_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    _assert_one_clean_line(capsys, "not a training work dir")
    assert main(["inspect", str(tmp_path)]) == 2
    _assert_one_clean_line(capsys, "not a model bundle")
    (tmp_path / "model.json").write_text('{"format_version": 1}')
    assert main(["inspect", str(tmp_path)]) == 2
    _assert_one_clean_line(capsys, "invalid")


def test_export_refuses_to_replace_a_foreign_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, foreign = tmp_path / "work", tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"meow")
    assert main(["train", *IRIS_LR, "--work", str(work), "--quiet"]) == 0

    assert main(["export", str(work), "--out", str(foreign), "--quiet"]) == 2

    _assert_one_clean_line(capsys, "refusing to replace")
    assert [p.name for p in foreign.iterdir()] == ["cat.jpg"]


@pytest.mark.parametrize(
    "option", ["--min-accuracy=nan", "--max-metric-drop=nan", "--parity-tolerance=inf"]
)
def test_a_non_finite_threshold_is_refused(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NaN compares false with everything: as a gate it would pass any model.
    with pytest.raises(SystemExit) as exit_info:
        main(["build", *IRIS_LR, option, "--out", str(tmp_path / "b")])

    assert exit_info.value.code == 2
    _assert_one_clean_line(capsys, "must be a finite number")


def test_build_json_reports_the_metrics_when_a_gate_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"

    rc = main(["build", *IRIS_LR, "--min-accuracy", "0.99", "--out", str(out), "--json", "--quiet"])

    assert rc == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["gates_missed"] == ["accuracy 0.9333 < 0.99 (short by 0.0567)"]
    assert doc["metrics"]["accuracy"] == pytest.approx(0.9333, abs=1e-4)
    assert "quality gate missed" in captured.err
    assert not out.exists()


def test_a_damaged_work_dir_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    assert main(["train", *IRIS_LR, "--work", str(work), "--quiet"]) == 0
    (work / "train.json").write_text("{}")
    capsys.readouterr()

    assert main(["validate", str(work)]) == 2

    _assert_one_clean_line(capsys, "train.json invalid at name: Field required")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_unwritable_work_dir_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    # /proc refuses new entries even to root, so this holds wherever the tests run.
    assert main(["train", *IRIS_LR, "--work", "/proc/onnxops-work", "--quiet"]) == 2

    _assert_one_clean_line(capsys, "cannot write into /proc")


def test_optimize_refuses_a_bundle_whose_model_was_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, out = tmp_path / "work", tmp_path / "bundle"
    assert main(["build", *IRIS_LR, "--work", str(work), "--out", str(out), "--quiet"]) == 0
    (out / "model.onnx").write_bytes(b"not a model")
    capsys.readouterr()

    assert main(["optimize", str(work), "--bundle", str(out), "--quiet"]) == 2

    _assert_one_clean_line(capsys, "model.onnx: sha256 differs")
    assert (out / "model.onnx").read_bytes() == b"not a model"  # left for the user to look at


def test_help_names_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--help"])

    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "1 a quality gate or the parity check missed; 2 bad input" in " ".join(text.split())
    assert "--min-accuracy X" in text


def test_export_json_reports_the_parity_figures_when_parity_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, out = tmp_path / "work", tmp_path / "bundle"
    assert main(["train", *IRIS_LR, "--work", str(work), "--quiet"]) == 0
    capsys.readouterr()

    rc = main(["export", str(work), "--out", str(out), "--parity-tolerance", "0", "--json"])

    assert rc == 1
    captured = capsys.readouterr()
    parity = json.loads(captured.out)["parity"]
    assert parity["passed"] is False and parity["tolerance"] == 0.0
    assert parity["max_abs_diff"] > 0 and parity["label_agreement"] == 1.0
    assert "parity check failed" in captured.err
    assert not out.exists()


def test_an_unplanned_failure_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A work dir whose model.joblib holds something else than an estimator.
    work = tmp_path / "work"
    assert main(["train", *IRIS_LR, "--work", str(work), "--quiet"]) == 0
    joblib.dump("not a model", work / "model.joblib")
    capsys.readouterr()
    monkeypatch.delenv("ONNXOPS_DEBUG", raising=False)

    assert main(["validate", str(work)]) == 1

    _assert_one_clean_line(capsys, "unexpected AttributeError")
    monkeypatch.setenv("ONNXOPS_DEBUG", "1")
    with pytest.raises(AttributeError):  # the traceback, for whoever debugs it
        main(["validate", str(work)])


def test_a_training_warning_travels_into_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    argv = ["--dataset", "iris", "--algorithm", "mlp", "--param", "max_iter=2"]
    assert main(["build", *argv, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()

    notes = json.loads((out / "model.json").read_text())["notes"]

    assert any("did not fully converge" in n for n in notes)
    assert main(["inspect", str(out)]) == 0
    assert "note:    the optimizer did not fully converge" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flag", "env"), [(["--part-size", "0"], None), ([], "5MiB")], ids=["flag", "env"]
)
def test_a_bad_part_size_is_one_line_exit_2_before_any_work(
    flag: list[str],
    env: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env is not None:
        monkeypatch.setenv("ONNXOPS_PUSH_PART_SIZE", env)
    assert main(["push", str(tmp_path), "s3://models/p/", *flag]) == 2
    _assert_one_clean_line(capsys, "part size must be a positive number of bytes")
    out = tmp_path / "bundle"
    assert main(["build", *IRIS_LR, "--out", str(out), "--push", "s3://models/p/", *flag]) == 2
    _assert_one_clean_line(capsys, "part size must be a positive number of bytes")
    assert not out.exists(), "refused before training"
