"""Where every image of the corpus comes from: one table of public sources, pinned revisions and
licences (docs/data.md's "Data sources" table repeats it; a test keeps the two equal).

Every source is served one file per image from a git repository pinned to a commit (``file_url``
names the file; the same bytes as the publisher's, checked image by image against
``original_sha256``). NIH and Kermany images are also in the publishers' archives
(``archives`` below ``archive_base``; about 44 GB to take out 1,284 images): the fallback for an
image the git copy lacks, or every image with ``cxr data fetch --from archives``. Archives have no
revisions, so there too every original is checked against its ``original_sha256`` and anything
else is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Source:
    name: str
    base_url: str  # the git repository's files at ``revision``
    revision: str
    licence: str
    # One image's file below the base ("{base}" is base_url or a mirror): "{name}" is its
    # original_name, "{folder}" its label's entry in ``folders``, other fields metadata columns.
    file_url: str
    folders: tuple[tuple[str, str], ...] = ()  # (label, folder) pairs for "{folder}"
    archives: tuple[str, ...] = ()  # the publisher's archives below archive_base, tried in order
    archive_base: str = ""
    archive_revision: str = ""

    def url_of(self, row: dict, base: str | None = None) -> str:
        """The URL of one metadata row's original (path parts quoted: folders may hold spaces)."""
        fields = {key: quote(value) for key, value in row.items() if isinstance(value, str)}
        return self.file_url.format(**{**fields, "base": (base or self.base_url).rstrip("/"),
                                       "name": quote(row["original_name"]),
                                       "folder": quote(dict(self.folders).get(row["label"], ""))})

    def archive_urls(self, base: str | None = None) -> list[str]:
        return [f"{(base or self.archive_base).rstrip('/')}/{path}" for path in self.archives]


IEEE8023_COMMIT = "cec70df07d40383581484c70bb6ada1e6a2fc077"
FIGURE1_COMMIT = "95bb569e55f4110d3b734c0f355340e04e16989a"
# Ozturk et al. 2020's DarkCovidNet data: the corpus's 1,000 NIH originals, byte for byte.
NIH_COPY_COMMIT = "ee3e2cffc0824711bed675275506b26f19be7198"
# Makris et al. 2020's data: the corpus's 284 Kermany (paediatric) originals, byte for byte.
KERMANY_COPY_COMMIT = "d224ceb699170f699fac501bd6d19db129211ffc"

SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("ieee8023",
           f"https://raw.githubusercontent.com/ieee8023/covid-chestxray-dataset/{IEEE8023_COMMIT}",
           IEEE8023_COMMIT, "per image (mostly CC BY-NC-SA 4.0; see the metadata's license column)",
           file_url="{base}/images/{name}"),
    Source("figure1",
           f"https://raw.githubusercontent.com/agchung/Figure1-COVID-chestxray-dataset/{FIGURE1_COMMIT}",
           FIGURE1_COMMIT, "research use (Figure 1 COVID-19 chest X-ray initiative)",
           file_url="{base}/images/{name}"),
    # NIH ChestX-ray14: the twelve images_001…012.tar.gz batch archives the NIH publishes
    # (about 42 GB in all) are the fallback; the corpus's 1,000 images are spread over them.
    Source("nih", f"https://raw.githubusercontent.com/muhammedtalo/COVID-19/{NIH_COPY_COMMIT}", NIH_COPY_COMMIT,
           "NIH Clinical Center, public (cite Wang et al. 2017)",
           file_url="{base}/X-Ray%20Image%20DataSet/{folder}/{name}",
           folders=(("normal", "No_findings"), ("pneumonia", "Pneumonia")),
           archive_base="https://nihcc.box.com/shared/static", archive_revision="images_001…012.tar.gz (2017 release)",
           archives=tuple(f"{key}.gz" for key in (
               "vfk49d74nhbxq3nqjg0900w5nvkorp5c", "i28rlmbvmfjbl8p2n3ril0pptcmcu9d1",
               "f1t00wrtdk94satdfb9olcolqx20z2jp", "0aowwzs5lhjrceb3qp67ahp0rd1l1etg",
               "v5e3goj22zr6h8tzualxfsqlqaygfbsn", "asi7ikud9jwnkrnkj99jnpfkjdes7l6l",
               "jn1b4mw4n6lnh74ovmcjb8y48h8xj07n", "tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j",
               "upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj", "l6nilvfa9cg3s28tqv1qc1olm3gnz54p",
               "hhq8fkdgvcari67vfhs7ppg2w6ni4jze", "ioqwiy20ihqwyr8pf4c24eazhh281pbu"))),
    # Kermany et al. 2018: the fallback is Mendeley Data rscbjbr9sj version 2, ChestXRay2017.zip
    # (about 1.2 GB). The git copy files each image under its Makris et al. split and label.
    Source("kaggle-paediatric", f"https://raw.githubusercontent.com/AntonisMakris/COVID19-XRay-Dataset/"
                                f"{KERMANY_COPY_COMMIT}", KERMANY_COPY_COMMIT, "CC BY 4.0",
           file_url="{base}/{makris2020_split}/{label}/{name}",
           archive_base="https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files",
           archive_revision="Mendeley Data rscbjbr9sj v2 (ChestXRay2017.zip)",
           archives=("f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded",)),
)}
