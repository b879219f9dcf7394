"""Chest X-ray data shared by the model packages: reading images, manifests, the decoded cache
and the torch dataset."""
from .cache import UnreadableImagesError
from .dataset import CXRDataset
from .images import ImageReadError, read_grayscale
from .manifest import CLASSES, SPLITS, ChecksumError, Manifest, ManifestError, Record, data_root, manifest_path

__all__ = ["CLASSES", "SPLITS", "CXRDataset", "ChecksumError", "ImageReadError", "Manifest",
           "ManifestError", "Record", "UnreadableImagesError", "data_root", "manifest_path",
           "read_grayscale"]
