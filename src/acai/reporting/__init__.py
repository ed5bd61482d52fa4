"""The paper's tables from an MLflow experiment (`src/report.py`, and a sweep's summary).

Reads the finished training runs (`runs`), groups them by dataset / model / latent size (rows) and
regularizer (columns, in the paper's order: Baseline = `none`, dropout, denoising, vae, aae, vqvae, acai),
and aggregates over seeds as the paper does (`aggregate`): per run the median of its last evaluations
(recomputed from the `eval/<metric>` history, by step), then mean ± std (np.std, ddof=0) over the runs,
with their count n. One table per measurement (`measurements`), rendered as Markdown (`tables`), bar
charts (`figures`) and learning curves over samples seen (`curves`); `report.build_report` does it all.
"""
