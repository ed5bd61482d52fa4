"""The report in Markdown: one paper table per measurement (`table_markdown`) and the whole
`report.md` (`combined_markdown`)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd

from acai.reporting.measurements import (
    LABELS,
    LAST,
    MARK,
    MEASUREMENTS,
    NEVER_LEFT,
    PAPER_LABEL,
    REGULARIZERS,
    SETTING,
    Measurement,
    paper_order,
)


def cell(mean: float, std: float) -> str:
    """`{mean:.2f}±{std:.2f}`; blank when there is no value, `~mean` when the paper gives no std."""
    if mean is None or math.isnan(mean):
        return ""
    return f"~{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f}±{std:.2f}"


def plateau_mark(stuck: int, n: int) -> str:
    """`†` when every run of a cell never left the initial plateau, `†k/n` when k of its n did, else nothing."""
    return "" if not stuck else MARK if stuck == n else f"{MARK}{stuck}/{n}"


def columns_of(table: pd.DataFrame) -> list[str]:
    """Regularizers present, in the paper's order (unknown ones after, by name), `pixels` last."""
    present = [r for r in table["regularizer"].unique() if r != "pixels"]
    cols = sorted(present, key=lambda r: paper_order(r, REGULARIZERS))
    return cols + (["pixels"] if "pixels" in set(table["regularizer"]) else [])


def _n_cell(ns: dict[str, int]) -> str:
    if len(set(ns.values())) <= 1:
        return str(next(iter(ns.values()), ""))
    return " ".join(f"{LABELS.get(r, r)}:{n}" for r, n in ns.items())


def table_markdown(m: Measurement, table: pd.DataFrame, window: str = f"its last {LAST} evaluations") -> str:
    """One paper table: a row per setting, a column per regularizer, the paper's row under ours where it has one;
    `window` says which evaluations each run's median covers (`window_note`)."""
    head = f"## {m.heading}\n\n"
    if table.empty:
        return head + f"_No finished run logged `eval/{m.metric}`._\n"
    cols = columns_of(table)
    lines = ["| dataset | model | latent | " + " | ".join(LABELS.get(c, c) for c in cols) + " | n |",
             "|---|---|---:|" + "---:|" * len(cols) + "---:|"]
    paper_rows = 0
    for keys, group in table.groupby(SETTING, sort=False):
        by_reg = {row.regularizer: row for row in group.itertuples()}
        ours = [("NaN" if by_reg[c].n == 0 else cell(by_reg[c].mean, by_reg[c].std)
                 + plateau_mark(by_reg[c].plateau, by_reg[c].n)) if c in by_reg else "" for c in cols]
        ns = {c: by_reg[c].n for c in cols if c in by_reg and c != "pixels" and by_reg[c].n}
        lines.append(f"| {keys[0]} | {keys[1]} | {keys[2]} | " + " | ".join(ours) + f" | {_n_cell(ns)} |")
        paper = m.paper.get((keys[0], keys[2]), {})
        if any(c in paper for c in cols):
            values = [cell(*paper[c]) if c in paper else "" for c in cols]
            lines.append(f"| {PAPER_LABEL} | | | " + " | ".join(values) + " | |")
            paper_rows += 1
    scale = f" x {m.scale:g}" if m.scale != 1 else ""
    notes = [f"Mean ± std (np.std, ddof=0) over the n runs (seeds) of each run's median of {window} "
             f"of `eval/{m.metric}`{scale}; {m.better} is better."]
    stuck = table[table["plateau"] > 0]
    if len(stuck):
        cells = ", ".join(f"{r.label} {r.dataset}/{r.model}/{r.latent_dim} ({r.plateau} of {r.n})"
                          for r in stuck.itertuples())
        notes.append(f"`{MARK}`: every run of the cell never left the initial plateau (`eval/on_plateau` = 1 at "
                     "every evaluation: its reconstruction error stayed within `evaluation.plateau_margin` of "
                     f"predicting every test image by the mean test image), so the value describes the plateau, "
                     f"not a result; `{MARK}k/n`: k of its n runs never left, and their values are in the mean. "
                     f"Runs that never left: {cells}.")
    undefined = table[table["undefined"] > 0]
    if len(undefined):
        cells = ", ".join(f"{r.label} {r.dataset}/{r.model}/{r.latent_dim} ({r.undefined})"
                          for r in undefined.itertuples())
        notes.append(f"Runs whose window was all undefined (NaN) or infinite (±inf, taken as undefined), left out "
                     f"of n and the mean (`NaN`: no run defined): {cells}. Single undefined (NaN or ±inf) "
                     "evaluations are skipped in the median.")
    if m.reference:
        notes.append(f"`pixels`: K-means on raw pixels (`eval/{m.reference}`), over all runs of the setting.")
    if paper_rows:
        notes.append(f"`{PAPER_LABEL}`: the paper's value for that setting as our reference notes recall it, not "
                     "checked against the paper (a rough target); "
                     "`~` where it gives no std.")
    return head + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def combined_markdown(experiment: str, sweep: str | None, filter_string: str | None, per_run: pd.DataFrame,
                      tables: dict[str, pd.DataFrame], *, notes: list[str],
                      window: str = f"its last {LAST} evaluations") -> str:
    """report.md: what was read, which evaluations each run counts with, every table, the figure."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    selection = [f"experiment `{experiment}`"] + ([f"sweep `{sweep}`"] if sweep else []) \
        + ([f"filter `{filter_string}`"] if filter_string else [])
    head = [f"# ACAI report: {', '.join(selection)}", "",
            f"{len(per_run)} finished runs, {per_run.groupby(SETTING).ngroups} setting(s), "
            f"regularizers {', '.join(LABELS.get(r, r) for r in columns_of(per_run))}; "
            f"generated {when}.", "", f"Each run counts with the median of {window}.", ""]
    stuck = int((per_run["plateau"] == NEVER_LEFT).sum())
    if stuck:
        head += [f"{stuck} of the {len(per_run)} runs never left the initial plateau; their cells are marked "
                 f"`{MARK}`.", ""]
    head += [f"> Note: {n}" for n in notes] + ([""] if notes else [])
    body = "\n".join(table_markdown(m, tables[m.key], window) for m in MEASUREMENTS)
    return "\n".join(head) + "\n" + body + "\n![bar charts](report.png)\n\n![learning curves](learning_curves.png)\n"
