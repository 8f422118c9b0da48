"""benchmarks/quality.py's tables and target verdicts."""

from benchmarks.quality import slice_table, verdicts


def _model(recall, ndcg=0.1, hit=None, rmse=None):
    return {"recall_at_20": recall, "ndcg_at_10": ndcg, "top100_interaction_hit_rate": hit, "rmse": rmse}


def test_slice_table_lists_each_user_slice_with_its_users():
    slices = {"cold": {"popularity": {"recall_at_20": 0.25, "n_users": 89.0},
                       "two_stage": {"recall_at_20": 0.5, "n_users": 89.0}},
              "heavy": {"two_stage": {"recall_at_20": 0.125, "n_users": 14.0}, "ease": {"recall_at_20": None}},
              "head": {"two_stage": {"recall_at_20": 0.9, "n_users": 100.0}}}
    rows = slice_table({"ml-time": slices}).splitlines()
    assert len(rows) == 4  # header, rule, cold, heavy (item slices such as head are left out)
    assert "| cold    |      89 |" in rows[2] and "0.2500" in rows[2] and "0.5000" in rows[2]
    assert "| heavy   |      14 |" in rows[3] and rows[3].count("nan") == 3


def test_verdicts_compare_each_target_with_its_baseline():
    results = {"popularity": _model(0.2, hit=0.1), "ease": _model(0.1), "item_item_only": _model(0.3),
               "two_stage": _model(0.31, hit=0.14, rmse=1.0), "bias_model": {"rmse": 1.1}}
    def verdict(label):
        (line,) = [line for line in verdicts({"ml-time": results}) if label in line]
        return line.split()[-1]

    assert verdict("recall_at_20 >= EASE") == "MET"
    assert verdict("recall_at_20 >= 1.05x popularity") == "MET"  # 0.31 vs 0.21
    assert verdict("top100 hit rate >= 1.3x popularity") == "MET"  # 0.14 vs 0.13
    assert verdict("rmse <= bias model") == "MET"
    results["two_stage"].update(top100_interaction_hit_rate=0.12, rmse=1.2)
    assert verdict("top100 hit rate >= 1.3x popularity") == "MISSED"
    assert verdict("rmse <= bias model") == "MISSED"
