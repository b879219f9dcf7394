"""`cxr data verify` and the missing-corpus message."""
from __future__ import annotations

from click.testing import CliRunner

from cxrdata.cli import data_cli

HEADER = "path,label,split,patient_id,source,sha256\n"


def test_verify_passes_on_the_committed_makris_manifest(corpus):
    result = CliRunner().invoke(data_cli, ["verify", "--dataset", "makris2020"])
    assert result.exit_code == 0, result.output
    assert "all files present" in result.output


def test_verify_names_missing_and_mismatched_files(corpus, tmp_path, monkeypatch):
    real = next((corpus / "images").rglob("*.png"))
    monkeypatch.setenv("CXR_DATA", str(corpus))
    rel = real.relative_to(corpus)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"{rel},normal,train,p1,x,{'0' * 64}\nimages/nowhere.png,normal,train,p2,x,\n")
    result = CliRunner().invoke(data_cli, ["verify", "--dataset", str(bad)])
    assert result.exit_code == 1
    assert f"{real.name}: checksum mismatch" in result.output
    assert "nowhere.png: file not found" in result.output
    assert "2 file(s) missing, mismatched or unreadable" in result.output


def test_an_absent_corpus_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CXR_DATA", str(tmp_path / "empty"))
    result = CliRunner().invoke(data_cli, ["verify"])
    assert result.exit_code == 1
    assert "no chest X-ray corpus at" in result.output and "CXR_DATA" in result.output
    assert "make fetch" in result.output
    root = CliRunner().invoke(data_cli, ["root"])
    assert root.exit_code == 1 and "make fetch" in root.output


def test_verify_reports_manifest_defects_in_one_line(corpus, tmp_path):
    cases = {"no-column.csv": ("path,label,split\nx.png,normal,train\n", "missing column(s) patient_id"),
             "label.csv": (HEADER + "x.png,flu,train,p,s,\n", "line 2: unknown label 'flu'"),
             "split.csv": (HEADER + "x.png,normal,holdout,p,s,\n", "line 2: unknown split 'holdout'")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        result = CliRunner().invoke(data_cli, ["verify", "--dataset", str(tmp_path / name)])
        assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1, result.output
    result = CliRunner().invoke(data_cli, ["verify", "--dataset", "cxr9"])
    assert result.exit_code == 1 and "cxr9.csv: manifest not found" in result.output
