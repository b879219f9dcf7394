"""Manifest validation: every malformed input names the file and row."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxrdata.manifest import ChecksumError, Manifest, ManifestError, check_file, sha256_of

HEADER = "path,label,split,patient_id,source,sha256\n"


def write(tmp_path, text: str):
    path = tmp_path / "m.csv"
    path.write_text(text)
    return path


def test_reads_and_resolves_paths_against_the_root(tmp_path):
    m = Manifest.read(write(tmp_path, HEADER + "a.png,covid,train,p1,x,\n"), root=tmp_path)
    assert len(m) == 1 and m[0].file == tmp_path / "a.png" and m[0].label_index == 1
    assert m.counts() == {"train": {"normal": 0, "covid": 1, "pneumonia": 0}}


@pytest.mark.parametrize("text, message", [
    ("path,label,split,source,sha256\n", "missing column.*patient_id"),
    (HEADER + "a.png,covid,train,p1,x,\nb.png,flu,train,p2,x,\n", "line 3: unknown label 'flu'"),
    (HEADER + "a.png,covid,holdout,p1,x,\n", "line 2: unknown split 'holdout'"),
    (HEADER + ",covid,train,p1,x,\n", "line 2: empty path"),
])
def test_malformed_manifest_names_file_and_row(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message) as info:
        Manifest.read(write(tmp_path, text), root=tmp_path)
    assert "m.csv" in str(info.value)


def test_missing_manifest_says_how_to_make_it(tmp_path):
    with pytest.raises(ManifestError, match="make manifests"):
        Manifest.read(tmp_path / "absent.csv")


def test_check_file_reports_missing_and_mismatched(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    good = sha256_of(tmp_path / "a.png")
    text = HEADER + f"a.png,normal,train,p1,x,{good}\nb.png,normal,train,p2,x,\na.png,normal,test,p3,x,{'0' * 64}\n"
    ok, missing, wrong = Manifest.read(write(tmp_path, text), root=tmp_path)
    check_file(ok)
    with pytest.raises(FileNotFoundError, match="b.png"):
        check_file(missing)
    with pytest.raises(ChecksumError, match="a.png: checksum mismatch"):
        check_file(wrong)


def test_write_then_read_round_trips(tmp_path):
    text = HEADER.strip() + ",view\n" + "a.png,covid,train,p1,x,,PA\n"
    m = Manifest.read(write(tmp_path, text), root=tmp_path)
    m.write(tmp_path / "copy.csv", extra_columns=["view"])
    assert (tmp_path / "copy.csv").read_text() == text
