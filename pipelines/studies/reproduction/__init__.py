"""Reproduce Zebin & Rezvy 2020, Makris et al. 2020 and Luiz et al. under their own protocols,
then audit each: patients grouped in the split, the lung controls (lungs removed, lungs only, outline
only, the central box), images of a source never trained on."""
from pipelines.studies.reproduction.protocols import PROFILES, PROTOCOLS, Protocol
from pipelines.studies.reproduction.runner import run_reproduction

__all__ = ["PROFILES", "PROTOCOLS", "Protocol", "run_reproduction"]
