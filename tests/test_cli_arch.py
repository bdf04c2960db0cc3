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


def test_list_has_the_exact_reach_columns():
    out = run("arch", "--list", "--patch-size", "512", "--pixel-size-nm", "0.02152")
    assert out.returncode == 0, out.stderr
    rows = {r["pools"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    cols = ("rf_px", "rf_exact_min_px", "rf_exact_max_px", "exceeds_patch")
    assert [rows["2-2"][c] for c in cols] == ["44", "44", "44", "false"]
    assert [rows["4-4"][c] for c in cols] == ["120", "116", "132", "false"]
    assert [rows["8-8"][c] for c in cols] == ["392", "356", "420", "false"]
    assert [rows["4-4-4"][c] for c in cols] == ["488", "468", "532", "true"]
    assert (rows["8-8"]["rf_exact_min_nm"], rows["8-8"]["rf_exact_max_nm"]) == ("7.66", "9.04")
    over = sorted(p for p, r in rows.items() if r["exceeds_patch"] == "true")
    assert over == ["2-2-4-4", "2-8-4", "4-4-4"]
    assert "3 of them reach past the patch" in out.stderr


def test_exceeds_patch_follows_patch_size(capsys):
    # at 1024 px patches 2-8-4 (524 px) and 4-4-4 (532 px) fit; 4-8-4 and 8-4-4 do not
    assert main(["arch", "--list", "--blocks", "3", "--patch-size", "1024"]) == 0
    rows = {r["pools"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert all(
        (r["exceeds_patch"] == "true") == (int(r["rf_exact_max_px"]) > 1024) for r in rows.values()
    )
    assert sorted(p for p, r in rows.items() if r["exceeds_patch"] == "true") == [
        "4-8-4",
        "8-4-4",
    ]
    assert rows["4-8-4"]["rf_exact_max_px"] == "1044"
    assert rows["2-8-4"]["exceeds_patch"] == rows["4-4-4"]["exceeds_patch"] == "false"


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_table_formats_show_the_exact_reach(capsys, fmt):
    args = ["arch", "--list", "--blocks", "2", "--format", fmt, "--pixel-size-nm", "0.02152"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == (1 if fmt == "table" else 2) + 9
    header = lines[0].replace("|", " ").split()
    for col in ("rf_px", "rf_exact_min_px", "rf_exact_max_px", "exceeds_patch"):
        assert col in header
    cells = next(li for li in lines if " 4-4 " in li).replace("|", " ").split()
    row = dict(zip(header, cells, strict=True))
    assert (row["rf_px"], row["rf_exact_min_px"], row["rf_exact_max_px"]) == ("120", "116", "132")
    assert row["exceeds_patch"] == "false"


def test_one_architecture_prints_eq1_and_the_exact_reach():
    out = run("arch", "--blocks", "2", "--pools", "4,4")
    assert out.returncode == 0, out.stderr
    assert "rf_px:      120" in out.stdout
    assert "rf_exact:   116-132 px" in out.stdout
    assert "RF 120 px (Eq. 1, the paper's), exact reach 116-132 px depending on position" in (
        out.stdout
    )


def test_one_architecture_exact_reach_in_nm(capsys):
    assert main(["arch", "--blocks", "2", "--pools", "8,8", "--pixel-size-nm", "0.02152"]) == 0
    out = capsys.readouterr().out
    assert "rf_exact_nm: 7.66-9.04" in out
    assert "exact reach 356-420 px depending on position; 8.44 nm, exact 7.66-9.04 nm" in out


def test_aligned_pools_print_one_exact_value(capsys):
    assert main(["arch", "--blocks", "2", "--pools", "2,2", "--dilations", "1,1,2"]) == 0
    assert "RF 60 px (Eq. 1, the paper's), exact reach 60 px at every position" in (
        capsys.readouterr().out
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
