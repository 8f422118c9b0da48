"""Measured variants shared by the compression report tests."""

from compression import report


def variant_record(name, kind, gzip, recall, ndcg, **metrics):
    """A measured variant with the given size and quality."""
    values = {"rmse": 1.0, **metrics}
    if kind == report.SAVED_MODEL:
        values.update(recall_at_20=recall, ndcg_at_10=ndcg)
    else:
        values.update(retrieval_recall_at_20=recall, retrieval_ndcg_at_10=ndcg)
    return report.VariantRecord(name, name, kind, f"/x/{name}", 2 * gzip, gzip, gzip // 2, 100, 50, {1: 1.5, 64: 9.25},
                                values, {"graph (saved_model.pb)": 10, "query_tower": 30})
