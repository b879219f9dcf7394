"""Where every image of the corpus comes from: one table of public sources, pinned revisions and
licences (the README's "Data sources" table repeats it; a test keeps the two equal).

A source is served either as one file per image (``file_url`` names it) or as archives that hold
the images among others (``archives``; only the listed images are taken out). Git hosted sources
are pinned to a commit; the others have no revisions, so every original is checked against its
``original_sha256`` in the corpus metadata and anything else is refused.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    name: str
    base_url: str
    revision: str
    licence: str
    file_url: str = ""          # per-image sources: "{base}/…/{name}" (base = base_url or a mirror)
    archives: tuple[str, ...] = ()  # archive sources: paths below the base URL, tried in order

    def url_of(self, original_name: str, base: str | None = None) -> str:
        return self.file_url.format(base=(base or self.base_url).rstrip("/"), name=original_name)

    def archive_urls(self, base: str | None = None) -> list[str]:
        return [f"{(base or self.base_url).rstrip('/')}/{path}" for path in self.archives]


IEEE8023_COMMIT = "cec70df07d40383581484c70bb6ada1e6a2fc077"
FIGURE1_COMMIT = "95bb569e55f4110d3b734c0f355340e04e16989a"

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
    # (about 42 GB in all); the corpus's 1,000 images are spread over them.
    Source("nih", "https://nihcc.box.com/shared/static", "images_001…012.tar.gz (2017 release)",
           "NIH Clinical Center, public (cite Wang et al. 2017)",
           archives=tuple(f"{key}.gz" for key in (
               "vfk49d74nhbxq3nqjg0900w5nvkorp5c", "i28rlmbvmfjbl8p2n3ril0pptcmcu9d1",
               "f1t00wrtdk94satdfb9olcolqx20z2jp", "0aowwzs5lhjrceb3qp67ahp0rd1l1etg",
               "v5e3goj22zr6h8tzualxfsqlqaygfbsn", "asi7ikud9jwnkrnkj99jnpfkjdes7l6l",
               "jn1b4mw4n6lnh74ovmcjb8y48h8xj07n", "tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j",
               "upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj", "l6nilvfa9cg3s28tqv1qc1olm3gnz54p",
               "hhq8fkdgvcari67vfhs7ppg2w6ni4jze", "ioqwiy20ihqwyr8pf4c24eazhh281pbu"))),
    # Kermany et al. 2018, Mendeley Data rscbjbr9sj version 2: ChestXRay2017.zip (about 1.2 GB).
    Source("kaggle-paediatric", "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files",
           "Mendeley Data rscbjbr9sj v2 (ChestXRay2017.zip)", "CC BY 4.0",
           archives=("f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded",)),
)}
