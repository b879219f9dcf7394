"""`cxr data fetch` against a local stand-in for the public sources (no internet needed).

The server serves, under each source's real path layout: the ieee8023 originals of
``raw-samples/`` (their real hashes), and corpus PNGs standing in for originals elsewhere (with
their own hashes as the expected ones), per image or packed into tar.gz / zip archives.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cxrdata.cli import data_cli
from cxrdata.download import fetch_verified
from cxrdata.fetch import PACKAGED_METADATA
from cxrdata.images import corpus_png
from cxrdata.manifest import REPO_ROOT
from cxrdata.sources import SOURCES
from conftest import RAW_SAMPLES
from mirror_server import MirrorServer, file_path, tar_gz, zipped


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StandIn:
    """Metadata rows, the server holding their originals, and the --mirror options to use it."""

    def __init__(self, corpus: Path, tmp: Path, server: MirrorServer):
        self.corpus, self.server = corpus, server
        with open(corpus / "metadata.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            self.fields, everything = reader.fieldnames, list(reader)
        by_original = {row["original_sha256"]: row for row in everything}
        self.rows: list[dict] = []
        for raw in sorted(RAW_SAMPLES.iterdir()):  # real originals, real hashes
            row = by_original.get(sha(raw.read_bytes()))
            if row:
                self.rows.append(row)
                server.files[f"/ieee8023/images/{row['original_name']}"] = raw.read_bytes()
        pick = {s: [r for r in everything if r["source"] == s] for s in SOURCES}
        for row in pick["figure1"][:2]:
            row = self.stand_in(row, Path(row["original_name"]).stem + ".png")
            server.files[f"/figure1/images/{row['original_name']}"] = self.png(row)
        nih = [self.stand_in(row, row["original_name"]) for row in pick["nih"][:3]]
        first, second = (f"/nih/{path}" for path in SOURCES["nih"].archives[:2])
        server.files[first] = tar_gz({f"images/{nih[0]['original_name']}": self.png(nih[0]),
                                      f"images/{nih[2]['original_name']}": b"not this one",
                                      "images/00000001_000.png": b"someone else"})
        server.files[second] = tar_gz({f"images/{r['original_name']}": self.png(r) for r in nih[1:]})
        kermany = [self.stand_in(row, row["original_name"]) for row in pick["kaggle-paediatric"][:2]]
        members = {f"chest_xray/train/NORMAL/{r['original_name']}": self.png(r) for r in kermany}
        members.update({f"__MACOSX/chest_xray/train/NORMAL/._{r['original_name']}": b"x" for r in kermany})
        server.files[f"/kaggle-paediatric/{SOURCES['kaggle-paediatric'].archives[0]}"] = zipped(members)
        self.metadata = tmp / "metadata.csv"
        with open(self.metadata, "w", newline="") as fh:
            writer = csv.DictWriter(fh, self.fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def stand_in(self, row: dict, name: str) -> dict:
        row = dict(row, original_name=name, original_sha256=row["sha256"])
        self.rows.append(row)
        return row

    def png(self, row: dict) -> bytes:
        return (self.corpus / row["path"]).read_bytes()

    def url(self, row: dict) -> str:
        return f"/{row['source']}/images/{row['original_name']}"

    def fetch(self, dest: Path, *extra: str):
        mirrors = [f"--mirror={name}={self.server.url}/{name}" for name in SOURCES]
        return CliRunner().invoke(data_cli, ["fetch", "--out", str(dest), "--metadata", str(self.metadata),
                                             "--retries", "0", "--timeout", "5", *mirrors, *extra])


@pytest.fixture
def stand_in(corpus, tmp_path):
    with MirrorServer() as server:
        yield StandIn(corpus, tmp_path, server)


def test_a_clean_fetch_rebuilds_the_corpus_images_byte_for_byte(stand_in, corpus, tmp_path):
    dest = tmp_path / "cxr"
    result = stand_in.fetch(dest)
    assert result.exit_code == 0, result.output
    assert f"{len(stand_in.rows)} fetched, 0 skipped" in result.output
    assert len(stand_in.rows) == 12  # 5 real ieee8023 originals, 2 figure1, 3 NIH, 2 Kermany stand-ins
    for row in stand_in.rows:
        made, real = dest / row["path"], corpus / row["path"]
        assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(real))), row["image_id"]
        assert sha(made.read_bytes()) == row["sha256"], row["image_id"]  # pins Pillow's PNG bytes
    assert (dest / "metadata.csv").read_bytes() == stand_in.metadata.read_bytes()
    assert not (dest / ".fetch").exists()
    served = len(stand_in.server.log)
    again = stand_in.fetch(dest)
    assert again.exit_code == 0 and f"0 fetched, {len(stand_in.rows)} skipped" in again.output
    assert len(stand_in.server.log) == served  # nothing downloaded twice


def serve_per_file(stand_in: StandIn, sources: tuple[str, ...]) -> None:
    """Serve ``sources``' originals one file per image, as their git copies lay them out."""
    for row in stand_in.rows:
        if row["source"] in sources:
            stand_in.server.files[file_path(row)] = stand_in.png(row)


def archive_requests(stand_in: StandIn) -> list[str]:
    archives = {f"/{name}/{path}" for name, source in SOURCES.items() for path in source.archives}
    return [path for path, _ in stand_in.server.log if path in archives]


def test_every_source_comes_one_file_per_image_without_an_archive(stand_in, tmp_path):
    serve_per_file(stand_in, ("nih", "kaggle-paediatric"))
    dest = tmp_path / "cxr"
    result = stand_in.fetch(dest)
    assert result.exit_code == 0, result.output
    assert f"{len(stand_in.rows)} fetched" in result.output
    assert archive_requests(stand_in) == []
    nih = next(r for r in stand_in.rows if r["source"] == "nih")
    folder = {"normal": "No_findings", "pneumonia": "Pneumonia"}[nih["label"]]
    assert (f"/nih/X-Ray Image DataSet/{folder}/{nih['original_name']}", "") in stand_in.server.log
    for row in stand_in.rows:
        assert sha((dest / row["path"]).read_bytes()) == row["sha256"], row["image_id"]


def test_an_image_the_git_copy_lacks_comes_from_the_archives_and_archives_can_be_forced(stand_in, tmp_path):
    serve_per_file(stand_in, ("nih", "kaggle-paediatric"))
    nih = [r for r in stand_in.rows if r["source"] == "nih"]
    lacking = nih[0]
    del stand_in.server.files[file_path(lacking)]
    result = stand_in.fetch(tmp_path / "cxr", "--sources", "nih")
    assert result.exit_code == 0 and "3 fetched" in result.output, result.output
    assert len(archive_requests(stand_in)) == 1  # only the archive that holds the lacking image
    stand_in.server.log.clear()
    forced = stand_in.fetch(tmp_path / "forced", "--sources", "nih", "--from", "archives")
    assert forced.exit_code == 0 and "3 fetched" in forced.output, forced.output
    assert all(path in archive_requests(stand_in) for path, _ in stand_in.server.log)


def test_an_image_in_neither_the_git_copy_nor_the_archives_names_both(stand_in, tmp_path):
    kermany = next(r for r in stand_in.rows if r["source"] == "kaggle-paediatric")
    wrong = dict(kermany, original_sha256="0" * 64)
    stand_in.rows[stand_in.rows.index(kermany)] = wrong
    with open(stand_in.metadata, "w", newline="") as fh:
        writer = csv.DictWriter(fh, stand_in.fields)
        writer.writeheader()
        writer.writerows(stand_in.rows)
    serve_per_file(stand_in, ("kaggle-paediatric",))
    result = stand_in.fetch(tmp_path / "cxr", "--sources", "kaggle-paediatric")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if f"failed {wrong['image_id']}" in line)
    assert "not in the git copy" in line and file_path(wrong).replace(" ", "%20") in line
    assert "does not match the known hash" in line and "is in none of the archives read" in line


def test_conversion_reproduces_the_corpus_from_real_originals_and_is_a_fixed_point(corpus):
    with open(corpus / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_original = {row["original_sha256"]: row for row in rows}
    originals = [p for p in sorted(RAW_SAMPLES.iterdir()) if sha(p.read_bytes()) in by_original]
    assert len(originals) == 5
    for path in originals:
        assert sha(corpus_png(path)) == by_original[sha(path.read_bytes())]["sha256"], path.name
    for row in rows[::200]:  # corpus images come out of the conversion unchanged
        assert sha(corpus_png(corpus / row["path"])) == row["sha256"], row["path"]


def test_failures_are_named_with_url_and_reason_and_nothing_partial_is_kept(stand_in, tmp_path):
    ieee = [r for r in stand_in.rows if r["source"] == "ieee8023"]
    missing, wrong, cut = ieee[0], ieee[1], ieee[2]
    stand_in.server.faults[stand_in.url(missing)] = "404"
    stand_in.server.files[stand_in.url(wrong)] = b"these are not the original bytes"
    stand_in.server.faults[stand_in.url(cut)] = "truncate"
    dest = tmp_path / "cxr"
    result = stand_in.fetch(dest, "--retries", "1")
    assert result.exit_code == 1
    assert f"failed {missing['image_id']}: {stand_in.server.url}{stand_in.url(missing)}: " in result.output
    assert "HTTP 404" in result.output
    assert f"failed {wrong['image_id']}" in result.output and "does not match the known hash" in result.output
    assert f"failed {cut['image_id']}" in result.output and "connection closed after" in result.output
    assert "3 image(s) could not be fetched" in result.output
    assert len(stand_in.server.requests_for(stand_in.url(missing))) == 1  # a 404 is not retried
    assert len(stand_in.server.requests_for(stand_in.url(cut))) == 2      # a cut body is
    for row in (missing, wrong, cut):
        assert not (dest / row["path"]).exists()
        assert not (dest / ".fetch" / "ieee8023" / row["original_name"]).exists()
    assert not (dest / "metadata.csv").exists()  # an incomplete corpus does not look ready


def test_an_unreachable_host_is_said_once_with_its_cause_and_tried_once(stand_in, tmp_path, monkeypatch):
    """Offline (a name that does not resolve, a refused connection): one line per host and cause,
    naming --mirror, instead of a line per image; and once a host is found unreachable, its other
    files are not tried (each would wait through its retries)."""
    from cxrdata import fetch

    tried = []
    monkeypatch.setattr(fetch, "fetch_verified", lambda url, *args: tried.append(url) or fetch_verified(url, *args))
    refused, unresolved = "http://127.0.0.1:1", "http://corpus-host.invalid"  # RFC 6761: never resolves
    mirrors = {"ieee8023": refused, "figure1": refused, "nih": unresolved, "kaggle-paediatric": unresolved}
    result = CliRunner().invoke(data_cli, ["fetch", "--out", str(tmp_path / "cxr"),
                                           "--metadata", str(stand_in.metadata),
                                           "--retries", "0", "--timeout", "5", "--jobs", "1",
                                           *(f"--mirror={name}={url}/{name}" for name, url in mirrors.items())])
    assert len(tried) == 2, tried  # one download per host
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "cannot reach" in line]
    assert len(lines) == 2, result.output
    assert any("127.0.0.1:1 (the connection was refused" in line for line in lines)
    assert any("corpus-host.invalid (its name does not resolve)" in line for line in lines)
    assert all("offline" in line and "--mirror SOURCE=URL" in line for line in lines)
    assert "failed ieee8023" not in result.output and "failed nih" not in result.output
    per_host = {"127.0.0.1:1": sum(r["source"] in ("ieee8023", "figure1") for r in stand_in.rows)}
    assert f"{per_host['127.0.0.1:1']} image(s) failed: cannot reach 127.0.0.1:1" in result.output
    assert f"{len(stand_in.rows)} image(s) could not be fetched" in result.output


def test_a_dropped_connection_resumes_from_its_last_byte_on_the_next_run(stand_in, tmp_path):
    row = next(r for r in stand_in.rows if r["source"] == "ieee8023")
    path = stand_in.url(row)
    size = len(stand_in.server.files[path])
    stand_in.server.faults[path] = "drop-once"
    nih_first = f"/nih/{SOURCES['nih'].archives[0]}"
    nih_second = f"/nih/{SOURCES['nih'].archives[1]}"
    stand_in.server.faults[nih_second] = "drop-once"
    dest = tmp_path / "cxr"
    first = stand_in.fetch(dest)
    assert first.exit_code == 1 and "connection closed after" in first.output
    second = stand_in.fetch(dest)
    assert second.exit_code == 0, second.output
    plain, resumed = stand_in.server.requests_for(path)
    assert plain == "" and 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= size // 2
    assert stand_in.server.requests_for(nih_second)[1].startswith("bytes=")
    assert len(stand_in.server.requests_for(nih_first)) == 1  # its images were done; not fetched again
    for r in stand_in.rows:
        assert sha((dest / r["path"]).read_bytes()) == r["sha256"]


def test_a_slow_server_within_the_timeout_is_fine(stand_in, tmp_path):
    for row in stand_in.rows:
        if row["source"] in ("ieee8023", "figure1"):
            stand_in.server.faults[stand_in.url(row)] = "slow"
    result = stand_in.fetch(tmp_path / "cxr", "--sources", "ieee8023,figure1", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "7 fetched" in result.output


def read_only_destination(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores modes: use a read-only file system instead
        folder = Path("/sys/cxr-fetch-test")
        try:
            folder.mkdir()
        except OSError:
            return folder
        folder.rmdir()
        pytest.skip("no read-only place to test with")
    return folder


def test_a_read_only_destination_fails_before_any_download(stand_in, tmp_path):
    dest = read_only_destination(tmp_path)
    result = stand_in.fetch(dest)
    assert result.exit_code == 1
    assert f"Error: {dest}: cannot write the corpus there" in result.output
    assert stand_in.server.log == []


@pytest.mark.parametrize("args, message", [
    (["--sources", "ieee8023,banana"], "unknown source(s) banana; choose from ieee8023"),
    (["--sources", " , "], "no source given; choose from ieee8023"),
    (["--mirror", "nih"], "'nih': expected SOURCE=http(s)://"),
    (["--mirror", "pubmed=http://x"], "'pubmed=http://x': expected SOURCE="),
    (["--jobs", "0"], "Invalid value for '--jobs'"),
])
def test_bad_options_are_named(tmp_path, args, message):
    result = CliRunner().invoke(data_cli, ["fetch", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and message in result.output


def test_hostile_metadata_paths_are_refused(tmp_path):
    with open(PACKAGED_METADATA, newline="") as fh:
        reader = csv.DictReader(fh)
        row = dict(next(reader), original_name="../../etc/passwd")
        fields = reader.fieldnames
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerow(row)
    result = CliRunner().invoke(data_cli, ["fetch", "--out", str(tmp_path / "x"), "--metadata", str(bad)])
    assert result.exit_code == 1 and "line 2" in result.output and "bare file name" in result.output


def test_packaged_metadata_is_the_corpus_metadata_and_the_data_docs_list_every_source(corpus):
    assert PACKAGED_METADATA.read_bytes() == (corpus / "metadata.csv").read_bytes()
    readme = (REPO_ROOT / "docs" / "data.md").read_text()  # the user guide's data page, "Data sources"
    for source in SOURCES.values():
        assert source.base_url in readme and source.revision in readme, source.name
        assert source.archive_base in readme and source.archive_revision in readme, source.name
        for path in source.archives:
            assert path.split("/")[0].removesuffix(".gz") in readme, path
