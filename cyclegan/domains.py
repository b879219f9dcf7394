"""CycleGAN domains as filters over a manifest's training split.

A filter is one or more ``key=value[,value…]`` terms joined by ``;``, with keys ``label`` and
``source``: ``label=normal`` (the default domain A), ``label=covid`` (B), ``source=nih``,
``source=ieee8023,figure1;label=normal,pneumonia``. ``labels`` (``--labels``) restricts both
domains to those labels. A run whose domains name different single labels is a *label
translation* (normal → covid: a synthetic image takes the target label); any other run keeps
each image's own label (source translation: the same disease in another source's style).
"""
from __future__ import annotations

from dataclasses import dataclass

from cxrdata import CLASSES, Manifest

KEYS = ("label", "source")


class DomainError(ValueError):
    """A domain filter that is malformed or selects unusable images; the message names the option."""


@dataclass(frozen=True)
class DomainFilter:
    """Which training images a domain holds: allowed values per key (a missing key allows all)."""

    text: str
    allowed: dict[str, frozenset[str]]

    def keeps(self, record) -> bool:
        return all(getattr(record, key) in values for key, values in self.allowed.items())

    @property
    def single_label(self) -> str | None:
        labels = self.allowed.get("label", frozenset())
        return next(iter(labels)) if len(labels) == 1 else None


def parse_filter(text: str, option: str, labels: str = "") -> DomainFilter:
    """``text`` (and the ``labels`` restriction) as a :class:`DomainFilter`; ``option`` names the
    command-line option in errors."""
    allowed: dict[str, frozenset[str]] = {}
    terms = [t for t in text.split(";") if t.strip()] + ([f"label={labels}"] if labels.strip() else [])
    if not terms:
        raise DomainError(f"{option} {text!r}: empty; write e.g. label=normal or source=nih")
    for term in terms:
        key, sep, values = (part.strip() for part in term.partition("="))
        chosen = frozenset(v.strip() for v in values.split(",") if v.strip())
        if not sep or key not in KEYS or not chosen:
            raise DomainError(f"{option} {text!r}: {term.strip()!r} is not KEY=VALUE[,VALUE…] with KEY one of "
                              f"{', '.join(KEYS)}")
        allowed[key] = allowed[key] & chosen if key in allowed else chosen
        if not allowed[key]:
            raise DomainError(f"{option} {text!r} with --labels {labels!r}: no {key} is left")
    return DomainFilter(text, allowed)


def select_domains(manifest: Manifest, domain_a: str, domain_b: str, labels: str = "",
                   batch_size: int = 1) -> tuple[Manifest, Manifest]:
    """The training images of domains A and B. Raises :class:`DomainError` for a value the
    manifest does not have, a domain with fewer images than a batch, or an image in both."""
    train = manifest.select(split="train")
    present = {"label": set(CLASSES), "source": {r.source for r in train}}
    selected = []
    for option, text in (("--domain-a", domain_a), ("--domain-b", domain_b)):
        domain = parse_filter(text, option, labels)
        for key, values in domain.allowed.items():
            unknown = sorted(values - present[key])
            if unknown:
                raise DomainError(f"{option} {text!r}: unknown {key} {', '.join(unknown)}; {manifest.name}'s "
                                  f"training split has {', '.join(sorted(present[key]))}")
        kept = Manifest([r for r in train if domain.keeps(r)], name=f"{manifest.name}[train/{text}]")
        if len(kept) < max(batch_size, 1):
            what = f"{option} {text!r}" + (f" with --labels {labels}" if labels else "")
            raise DomainError(f"{what}: selects no training images of {manifest.name}" if not len(kept) else
                              f"{what}: {len(kept)} training image(s) in {manifest.name}, fewer than a batch "
                              f"({batch_size})")
        selected.append(kept)
    both = {r.sha256 or r.path for r in selected[0]} & {r.sha256 or r.path for r in selected[1]}
    if both:
        example = next(r.path for r in selected[0] if (r.sha256 or r.path) in both)
        raise DomainError(f"--domain-a {domain_a!r} and --domain-b {domain_b!r}: {len(both)} image(s) are in both "
                          f"domains (e.g. {example}); the domains must not overlap")
    return selected[0], selected[1]


def is_label_translation(domain_a: str, domain_b: str, labels: str = "") -> bool:
    """Whether the domains differ by label (each names one label, and they differ)."""
    a, b = (parse_filter(t, o, labels).single_label for t, o in ((domain_a, "--domain-a"), (domain_b, "--domain-b")))
    return a is not None and b is not None and a != b


def target_label(parent_label: str, target_domain: str, label_translation: bool) -> str:
    """The label of a synthetic image translated into ``target_domain``: the domain's own label
    in a label translation, else its parent's."""
    return parse_filter(target_domain, "domain").single_label if label_translation else parent_label
