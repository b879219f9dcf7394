"""The one formatting helper every report uses (runkit.formatting)."""
from runkit.formatting import decimal, interval, markdown_table, mean_sd, pct, rate_with_ci, signed_interval, signed_pct


def test_known_answers():
    assert (decimal(0.91234), decimal(0.91234, 2), decimal(None)) == ("0.912", "0.91", "–")
    assert (pct(0.6912), pct(0.6912, 0), pct(None)) == ("69.1", "69", "–")
    assert (signed_pct(-0.0076), signed_pct(0.066), signed_pct(0), signed_pct(None)) == ("-0.8", "+6.6", "+0.0", "–")
    assert signed_interval({"estimate": -0.0076, "low": -0.034, "high": 0.018}) == "-0.8 [-3.4, +1.8]"
    assert signed_interval(None) == "undefined"
    assert mean_sd({"mean": 0.691, "std": 0.017}) == "69.1 ± 1.7"
    assert mean_sd({"mean": 4.93, "std": 0.41}, scale=1, digits=2) == "4.93 ± 0.41" and mean_sd(None) == "–"
    assert rate_with_ci({"rate": 0.723, "ci95": (0.669, 0.771), "k": 214, "n": 296}) == "72.3 % [66.9, 77.1] (214/296)"


def test_a_markdown_table_has_its_header_rule_and_rows_with_missing_cells_dashed():
    assert markdown_table(["a", "b"], [[1, None], ["x", 2.5]]) == ["| a | b |", "| --- | --- |", "| 1 | – |",
                                                                   "| x | 2.5 |"]
    assert markdown_table(["n", "x"], [[3, "a"]], right=(0,))[1] == "| ---: | --- |"
    assert interval({"estimate": 0.934, "low": 0.88, "high": 0.978}) == "93.4 [88.0, 97.8]" and interval(None) == "–"
