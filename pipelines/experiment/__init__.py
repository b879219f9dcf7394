"""The experiment: v1 vs v2 on the same split and seeds, its statistics, report and steps, and v3's
counterfactual set."""
