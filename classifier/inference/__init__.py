"""A finished run at work: predicting files, export, the live-testing server, its input gate and load test."""
