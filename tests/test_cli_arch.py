"""`temseg arch` and `temseg import-legacy` through the real console script."""

import csv
import io
import subprocess
import sys

import pytest

from temseg.cli import main


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "temseg.cli", *args], capture_output=True, text=True
    )


def test_list_prints_the_papers_thirty_architectures():
    out = run("arch", "--list", "--patch-size", "512", "--pixel-size-nm", "0.02152")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 30
    assert [sum(r["num_blocks"] == n for r in rows) for n in "234"] == [9, 14, 7]
    first = rows[0]
    assert (first["pools"], first["rf_px"], first["rf_nm"], first["n_params"]) == (
        "2-2",
        "44",
        "0.95",
        "8074",
    )


def test_markdown_table(capsys):
    assert main(["arch", "--list", "--blocks", "2", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| num_blocks | pools |")
    assert len(lines) == 2 + 9


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--blocks", "2", "--pools", "8,8", "--pixel-size-nm", "0.02152"],
            ["rf_px:      392", "rf_nm:      8.44", "n_params:   8074"],
        ),
        (["--blocks", "2", "--pools", "2,2", "--dilations", "1,1,2"], ["rf_px:      60"]),
        (["--blocks", "4", "--pools", "2,2,2,2"], ["n_params:   130682"]),
    ],
)
def test_one_architecture(capsys, args, expected):
    assert main(["arch", *args]) == 0
    out = capsys.readouterr().out
    for line in expected:
        assert line in out


def test_bad_pools_is_a_clear_error(capsys):
    assert main(["arch", "--blocks", "2", "--pools", "8"]) == 2
    assert "one kernel per block" in capsys.readouterr().err


def test_import_legacy(reference_models, tmp_path, capsys):
    out = tmp_path / "m88.pt"
    assert (
        main(
            [
                "import-legacy",
                str(reference_models / "20210922_UNet_b2_m88_run5_model.h5"),
                str(out),
            ]
        )
        == 0
    )
    assert "pools 8-8" in capsys.readouterr().out and out.is_file()
