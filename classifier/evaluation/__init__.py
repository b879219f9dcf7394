"""What a run is measured by: test outputs, metrics, Grad-CAM, out-of-source checks, report files, the
model card, evaluation on other data."""
