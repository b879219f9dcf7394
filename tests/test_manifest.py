"""Manifest validation: every malformed input names the file and row."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxrdata.manifest import ChecksumError, Manifest, ManifestError, check_checksum, same_bytes_within_splits, sha256_of

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


def test_check_checksum_names_a_mismatched_file(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "c.png").write_bytes((tmp_path / "a.png").read_bytes())
    good = sha256_of(tmp_path / "a.png")
    text = HEADER + f"a.png,normal,train,p1,x,{good}\nc.png,normal,test,p3,x,{'0' * 64}\n"
    ok, wrong = Manifest.read(write(tmp_path, text), root=tmp_path)
    check_checksum(ok)
    with pytest.raises(ChecksumError, match="c.png: checksum mismatch"):
        check_checksum(wrong)


SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.mark.parametrize("rows, message", [
    (f"a.png,normal,train,p1,x,{SHA_A}\na.png,normal,train,p1,x,{SHA_A}\n", r"a.png is listed on lines 2, 3 twice"),
    (f"a.png,normal,train,p1,x,{SHA_A}\ntest/a.png,covid,test,p2,x,{SHA_A}\n",
     r"same image bytes are in splits test, train: a.png \(line 2, train\), test/a.png \(line 3, test\)"),
])
def test_duplicates_and_cross_split_copies_are_refused_unless_allowed(tmp_path, rows, message):
    path = write(tmp_path, HEADER + rows)
    with pytest.raises(ManifestError, match=message + ".*--allow-duplicates"):
        Manifest.read(path, root=tmp_path)
    assert len(Manifest.read(path, root=tmp_path, allow_duplicates=True).notices) == 1


@pytest.mark.parametrize("rows, message", [
    (f"a.png,normal,train,p1,x,{SHA_A}\na.png,covid,train,p1,x,{SHA_A}\n", "with different labels or splits"),
    ("../../../../etc/hostname,normal,train,p1,x,\n", "line 2: path '../../../../etc/hostname' leads outside"),
    ("images/../../x.png,normal,train,p1,x,\n", "leads outside the data root"),
])
def test_conflicting_labels_and_paths_outside_the_root_are_always_refused(tmp_path, rows, message):
    path = write(tmp_path, HEADER + rows)
    with pytest.raises(ManifestError, match=message):
        Manifest.read(path, root=tmp_path, allow_duplicates=True)


def test_same_bytes_within_one_split_is_not_a_leak(tmp_path):
    rows = f"a.png,normal,test,p1,x,{SHA_A}\nb.png,normal,test,p1,x,{SHA_A}\nc.png,normal,train,p2,x,{SHA_B}\n"
    manifest = Manifest.read(write(tmp_path, HEADER + rows), root=tmp_path)
    assert [[r.path for r in g] for g in same_bytes_within_splits(manifest)] == [["a.png", "b.png"]]


def test_write_then_read_round_trips(tmp_path):
    text = HEADER.strip() + ",view\n" + "a.png,covid,train,p1,x,,PA\n"
    m = Manifest.read(write(tmp_path, text), root=tmp_path)
    m.write(tmp_path / "copy.csv", extra_columns=["view"])
    assert (tmp_path / "copy.csv").read_text() == text
