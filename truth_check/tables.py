"""The rich tables ``lifecredit truth-check`` prints from :func:`truth_check.runner.run`'s result."""

from __future__ import annotations

from rich.table import Table

from training.master_scale import CLASSES


def _num(x, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _pct(x) -> str:
    return _num(x, "{:.2%}")


def headline(result: dict) -> Table:
    """One line per figure, for all merchants and for those the model never saw."""
    rows = result["rows"]
    table = Table(title=f"truth check of {result['model']['uri']} at {', '.join(rows['as_of'])}")
    table.add_column("figure", no_wrap=True)
    table.add_column("all merchants", justify="right")
    table.add_column("unseen merchants", justify="right")
    a, u = result["all"], result["unseen"]

    def line(name: str, get, fmt=_num) -> None:
        table.add_row(name, *(fmt(get(s)) if s["rows"] else "-" for s in (a, u)))

    table.add_row("rows (merchants)", *(f"{s['rows']:,} ({s['merchants']:,})" for s in (a, u)))
    line("Spearman (pd, true PD)", lambda s: s["spearman"])
    line("  ceiling Spearman", lambda s: s["ceiling"]["spearman"])
    line("  model / ceiling", lambda s: s["spearman_ratio"])
    line("kappa (class, true class)", lambda s: s["kappa"])
    line("  ceiling kappa", lambda s: s["ceiling"]["kappa"])
    line("  model / ceiling", lambda s: s["kappa_ratio"])
    line("calibration slope (1 ideal)", lambda s: s["calibration"]["slope"])
    line("calibration intercept (0 ideal)", lambda s: s["calibration"]["intercept"])
    line("  logit offset, slope 1 (0 ideal)", lambda s: s["calibration"]["offset"])
    line("mean PD", lambda s: s["mean_pd"], _pct)
    line("mean true PD", lambda s: s["mean_true_pd"], _pct)
    for s_name, key in (("AUC of pd on bad", "auc_pd"), ("AUC of true PD on bad", "auc_true_pd")):
        table.add_row(
            s_name, *((_num(s["labels"].get(key)) if key in s["labels"] else "- (no labels)") for s in (a, u))
        )
    table.caption = (
        f"rows dropped: {rows['fitted_rows_dropped']:,} fitted on, {rows['in_default']:,} in default, "
        f"{rows['without_truth']:,} without truth; ceiling: {result['ceiling']['train_rows']:,} train rows, "
        f"{result['ceiling']['best_iteration']} trees"
    )
    return table


def classes(section: dict, title: str) -> Table:
    """Confusion matrix (rows: true class, columns: model class), shares and mean PDs per class."""
    table = Table(title=title)
    table.add_column("true \\ model")
    for c in CLASSES:
        table.add_column(c, justify="right")
    table.add_column("true share", justify="right")
    matrix = section["confusion"]["matrix"]
    for c, counts in zip(CLASSES, matrix):
        table.add_row(c, *(f"{n:,}" for n in counts), _pct(section["class_share"]["truth"][c]))
    table.add_row("model share", *(_pct(section["class_share"]["model"][c]) for c in CLASSES), "", end_section=True)
    by = {r["class"]: r for r in section["by_class"]}
    table.add_row("mean PD", *(_pct(by[c]["mean_pd"]) for c in CLASSES), "")
    table.add_row("mean true PD", *(_pct(by[c]["mean_true_pd"]) for c in CLASSES), "")
    return table


def grades(section: dict, title: str) -> Table:
    """Merchants, mean PD and mean true PD per model grade (and merchants per true grade)."""
    table = Table(title=title)
    for col in ("grade", "model n", "true n", "mean PD", "mean true PD"):
        table.add_column(col, justify="left" if col == "grade" else "right")
    for r in section["by_grade"]:
        table.add_row(r["grade"], f"{r['n']:,}", f"{r['n_true']:,}", _pct(r["mean_pd"]), _pct(r["mean_true_pd"]))
    return table


def tables(result: dict) -> list[Table]:
    return [
        headline(result),
        classes(result["all"], "classes, all merchants (rows: true class)"),
        grades(result["all"], "grades, all merchants"),
    ]
