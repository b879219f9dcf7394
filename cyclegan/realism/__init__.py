"""How far synthetic images are from real ones, in one place: the measures (Fréchet distance,
precision and recall, checkerboard), the fixed feature networks they use, and a synthesis's
metrics, report lines and figures."""
