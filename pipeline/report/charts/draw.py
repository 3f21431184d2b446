"""The charts themselves: dot plots per method, the perception-distortion plane, the
spread across seeds, and the overview's small multiples."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.measure.catalogue import METRICS, Threshold, display_order
from pipeline.report.charts.common import (
    EN_DASH,
    FIGURE_WIDTH_IN,
    JITTER_SEED,
    LPIPS,
    MIDDOT,
    OVERVIEW_KEY,
    PSNR,
    STRIP_MAX_POINTS,
    TIMES,
    ChartMetric,
    Drawn,
    Group,
    Style,
    capitalised,
    chart_metric,
    chart_slug,
    ci_caption,
    convention_words,
    dot_height,
    error_bars,
    excluded_words,
    finding,
    group_rows,
    metric_rows,
    n_words,
    pick_metric,
    ranked_rows,
    safe,
    stochastic_methods,
    task_order,
)


def dot_axes(
    ax: Axes,
    rows: pd.DataFrame,
    metric: ChartMetric,
    styles: Mapping[str, Style],
) -> None:
    """Horizontal dot plot of ``rows`` (one per method, name order) on ``ax``."""
    positions = np.arange(len(rows))
    for position, row in zip(positions, rows.itertuples(index=False), strict=True):
        style = styles[row.method]
        below, above = error_bars(row.mean, row.ci_low, row.ci_high)
        ax.errorbar(
            [row.mean],
            [position],
            xerr=[[below], [above]],
            fmt=style.marker,
            color=style.colour,
            markersize=6,
            capsize=3,
            elinewidth=1.2,
        )
    ax.set_yticks(positions, labels=list(rows["method"]))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(metric.axis_label)
    ax.grid(axis="x")
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    values = ax.secondary_yaxis("right")
    values.set_yticks(positions, labels=[metric.number(v) for v in rows["mean"]])
    values.tick_params(length=0)
    values.spines["right"].set_visible(False)
    best = ranked_rows(rows, metric).iloc[0]["method"]
    for label, method in zip(values.get_yticklabels(), rows["method"], strict=True):
        if method == best:
            label.set_fontweight("bold")


def dot_chart(
    group: Group,
    rows: pd.DataFrame,
    metric: ChartMetric,
    styles: Mapping[str, Style],
    stochastic: set[str],
    kind: str,
    title: str,
) -> Drawn:
    figure = Figure(figsize=(FIGURE_WIDTH_IN, dot_height(len(rows))), layout="constrained")
    ax = figure.add_subplot()
    dot_axes(ax, rows, metric, styles)
    if metric.info.threshold is not None:  # identity's 0.6: the same person
        threshold_line(ax, metric.info.threshold)
    alt = (
        f"Dot plot of the mean {metric.short} of {len(rows)} "
        f"method{'s' if len(rows) != 1 else ''} with 95 % confidence intervals, {group.words}. "
        + finding(rows, metric)
    )
    caption = (
        f"{capitalised(metric.short)}, metric {metric.name}; {metric.direction}. "
        f"{ci_caption()} "
        + n_words(rows, stochastic)
        + excluded_words(rows)
        + convention_words(rows)
    )
    return Drawn(
        group.key, chart_slug(group, kind), f"{title} {EN_DASH} {group.label}", alt, caption, figure
    )


def threshold_line(ax: Axes, threshold: Threshold) -> None:
    ax.axvline(threshold.value, color="0.45", linestyle="--", linewidth=1.0, zorder=0)
    ax.annotate(
        f"{threshold.value}: {threshold.meaning}",
        xy=(threshold.value, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(3, -2),
        textcoords="offset points",
        ha="left",
        va="top",
        fontsize=9,
        color="0.35",
    )


def pareto(points: pd.DataFrame) -> list[str]:
    """Methods no other method beats on both axes (lower x = LPIPS, higher y = PSNR)."""
    front = []
    for row in points.itertuples(index=False):
        dominated = (
            (points["x"] <= row.x)
            & (points["y"] >= row.y)
            & ((points["x"] < row.x) | (points["y"] > row.y))
        ).any()
        if not dominated:
            front.append(row.method)
    return front


def plane_chart(
    group: Group,
    psnr_rows: pd.DataFrame,
    lpips_rows: pd.DataFrame,
    psnr: ChartMetric,
    lpips: ChartMetric,
    styles: Mapping[str, Style],
) -> Drawn | None:
    """Perception-distortion plane: x = LPIPS mean, y = PSNR mean, both with CIs."""
    points = lpips_rows.merge(psnr_rows, on="method", suffixes=("_x", "_y"))
    points = points.rename(columns={"mean_x": "x", "mean_y": "y"}).sort_values("method")
    if len(points) < 2:
        return None  # one point says nothing the two dot plots do not say
    figure = Figure(figsize=(FIGURE_WIDTH_IN, 4.4), layout="constrained")
    ax = figure.add_subplot()
    x_span = float(points["x"].max() - points["x"].min()) or 1.0
    x_mid = float(points["x"].min()) + 0.75 * x_span
    for row in points.itertuples(index=False):
        style = styles[row.method]
        x_err = error_bars(row.x, row.ci_low_x, row.ci_high_x)
        y_err = error_bars(row.y, row.ci_low_y, row.ci_high_y)
        ax.errorbar(
            [row.x],
            [row.y],
            xerr=[[x_err[0]], [x_err[1]]],
            yerr=[[y_err[0]], [y_err[1]]],
            fmt=style.marker,
            color=style.colour,
            markersize=6,
            capsize=2,
            elinewidth=1.0,
        )
        # Labels go left of points in the right quarter, so that they stay inside the axes.
        right = row.x <= x_mid
        ax.annotate(
            row.method,
            xy=(row.x, row.y),
            xytext=(6 if right else -6, 4),
            textcoords="offset points",
            ha="left" if right else "right",
            va="bottom",
            fontsize=9,
        )
    front = pareto(points)
    front_points = points[points["method"].isin(front)].sort_values("x")
    if len(front_points) > 1:
        ax.plot(
            front_points["x"],
            front_points["y"],
            color="0.55",
            linestyle=":",
            linewidth=1.0,
            zorder=0,
        )
    ax.annotate(
        "better",
        xy=(0.02, 0.98),
        xycoords="axes fraction",
        xytext=(0.13, 0.84),
        textcoords="axes fraction",
        ha="left",
        va="top",
        fontsize=9,
        color="0.35",
        arrowprops={"arrowstyle": "->", "color": "0.35", "linewidth": 1.0},
    )
    ax.margins(x=0.15, y=0.15)
    ax.set_xlabel(f"{lpips.short}, mean; lower is better")
    ax.set_ylabel(f"{psnr.short}, mean (dB); higher is better")
    ax.grid(True)
    ax.set_axisbelow(True)

    best_lpips = ranked_rows(lpips_rows[lpips_rows["method"].isin(points["method"])], lpips).iloc[0]
    best_psnr = ranked_rows(psnr_rows[psnr_rows["method"].isin(points["method"])], psnr).iloc[0]
    dominated = [m for m in points["method"] if m not in front]
    alt = (
        f"Perception-distortion plane for {len(points)} methods, {group.words}: x is the mean "
        f"{lpips.short}, lower is better; y is the mean {psnr.short}, higher is better; so the "
        f"upper left corner is best. Lowest LPIPS: {best_lpips['method']} "
        f"({lpips.value(best_lpips['mean'])}); highest PSNR: {best_psnr['method']} "
        f"({psnr.value(best_psnr['mean'])}). Not beaten on both axes by any other method: "
        f"{', '.join(front)}"
        + (f"; beaten on both by another: {', '.join(dominated)}." if dominated else ".")
    )
    caption = (
        f"x: {lpips.name}, y: {psnr.name}; each point one method's means, error bars "
        f"bootstrap 95 % confidence intervals of the means. The dotted line joins the methods "
        f"that no other method beats on both axes. "
        + n_words(points.rename(columns={"n_y": "n"}), set())
    )
    return Drawn(
        group.key,
        chart_slug(group, "plane"),
        f"Perception{EN_DASH}distortion plane {EN_DASH} {group.label}",
        alt,
        caption,
        figure,
    )


def seed_spread(usable: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per method and image: std (ddof=1) of ``column`` across seeds, and the seed count."""
    rows = usable[np.isfinite(pd.to_numeric(usable[column], errors="coerce"))]
    grouped = rows.groupby(["method", "image_id"])[column]
    spread = pd.DataFrame({"std": grouped.std(ddof=1), "seeds": grouped.count()}).reset_index()
    return spread[spread["seeds"] > 1].sort_values(["method", "image_id"]).reset_index(drop=True)


def spread_column(usable: pd.DataFrame) -> str | None:
    """LPIPS if any is scored, else PSNR (Y, then RGB)."""
    for family in (LPIPS, PSNR):
        for column in display_order(c for c in usable.columns if c in METRICS):
            info = METRICS[column]
            if info.family == family and info.charted:
                values = pd.to_numeric(usable[column], errors="coerce")
                if np.isfinite(values).any():
                    return column
    return None


def convergence_words(usable: pd.DataFrame, methods: Sequence[str]) -> str:
    """``converged`` counts of methods that report it (PULSE)."""
    if "converged" not in usable.columns:
        return ""
    parts = []
    for method in methods:
        flags = usable.loc[usable["method"] == method, "converged"].dropna()
        if len(flags):
            parts.append(
                f"{method}: {int(flags.astype(bool).sum())} of {len(flags)} runs converged"
            )
    return (" " + "; ".join(parts) + ".") if parts else ""


def spread_chart(group: Group, usable: pd.DataFrame, styles: Mapping[str, Style]) -> Drawn | None:
    stochastic = sorted(stochastic_methods(usable))
    if not stochastic:
        return None
    usable = usable[usable["method"].isin(stochastic)]
    column = spread_column(usable)
    if column is None:
        return None
    spread = seed_spread(usable, column)
    methods = [m for m in stochastic if (spread["method"] == m).any()]
    if not methods:
        return None
    metric = chart_metric(column)
    if metric is None:
        return None
    unit = f" ({metric.unit.strip()})" if metric.unit else ""
    figure = Figure(figsize=(FIGURE_WIDTH_IN, dot_height(len(methods)) + 0.2), layout="constrained")
    ax = figure.add_subplot()
    rng = np.random.default_rng(JITTER_SEED)
    for position, method in enumerate(methods):
        values = spread.loc[spread["method"] == method, "std"].to_numpy()
        style = styles[method]
        ax.boxplot(
            [values],
            positions=[position],
            orientation="horizontal",
            widths=0.5,
            whis=(5, 95),
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "none", "edgecolor": style.colour},
            medianprops={"color": style.colour, "linewidth": 1.8},
            whiskerprops={"color": style.colour},
            capprops={"color": style.colour},
        )
        if len(values) <= STRIP_MAX_POINTS:
            jitter = rng.uniform(-0.18, 0.18, size=len(values))
            ax.scatter(
                values,
                position + jitter,
                s=20,
                marker=style.marker,
                color=style.colour,
                alpha=0.7,
                linewidths=0,
            )
    ax.set_yticks(range(len(methods)), labels=methods)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(f"Std of {metric.short} across seeds, per image{unit}; lower is more repeatable")
    ax.grid(axis="x")
    ax.set_axisbelow(True)

    findings = []
    for method in methods:
        per_method = spread[spread["method"] == method]
        worst = per_method.sort_values(["std", "image_id"], ascending=[False, True]).iloc[0]
        seeds = int(per_method["seeds"].max())
        findings.append(
            f"{method}: median {metric.value(float(per_method['std'].median()))} over "
            f"{len(per_method)} images with up to {seeds} seeds, largest "
            f"{metric.value(float(worst['std']))} (image {worst['image_id']})"
        )
    alt = (
        f"Box plot of the per-image standard deviation of {metric.short} across seeds for the "
        f"stochastic method{'s' if len(methods) > 1 else ''} {', '.join(methods)}, "
        f"{group.words}. " + "; ".join(findings) + "."
    )
    caption = (
        f"Each point is one image: the standard deviation (ddof = 1) of its {column} over the "
        f"method's seeds (points drawn for methods with at most {STRIP_MAX_POINTS} images, "
        f"jittered vertically). Box: quartiles and median; whiskers: 5th to 95th percentile. "
        f"The mean of these values is seed_std in the summary table."
        + convergence_words(usable, methods)
    )
    return Drawn(
        group.key,
        chart_slug(group, "seed-spread"),
        f"Spread across seeds {EN_DASH} {group.label}",
        alt,
        caption,
        figure,
    )


# ----------------------------------------------------------------------------- overview


def overview_chart(
    overall: pd.DataFrame,
    groups: Sequence[Group],
    family: str,
    kind: str,
    styles: Mapping[str, Style],
) -> Drawn | None:
    """Small multiples: a panel per data set (and kernel), tasks on x, a dodged dot per method."""
    picked: list[tuple[Group, ChartMetric, pd.DataFrame]] = []
    for group in groups:
        rows = group_rows(overall, group)
        metric = pick_metric(rows, family)
        if metric is not None:
            picked.append((group, metric, metric_rows(rows, metric)))
    if len({g.key for g, _, _ in picked}) < 2:
        return None
    kernels = {g.kernel for g, _, _ in picked}
    panels = sorted({(g.dataset, g.kernel) for g, _, _ in picked})
    methods = sorted({m for _, _, rows in picked for m in rows["method"]})
    n_cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    figure = Figure(figsize=(FIGURE_WIDTH_IN, 2.5 * n_rows + 0.6), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    first_metric = picked[0][1]
    dodge = 0.6 / max(len(methods), 1)
    for index, (dataset, kernel) in enumerate(panels):
        ax = axes[index // n_cols][index % n_cols]
        in_panel = [(g, m, r) for g, m, r in picked if (g.dataset, g.kernel) == (dataset, kernel)]
        in_panel.sort(key=lambda item: task_order(item[0].task))
        for x, (_, _, rows) in enumerate(in_panel):
            for row in rows.itertuples(index=False):
                style = styles[row.method]
                offset = (methods.index(row.method) - (len(methods) - 1) / 2) * dodge
                below, above = error_bars(row.mean, row.ci_low, row.ci_high)
                ax.errorbar(
                    [x + offset],
                    [row.mean],
                    yerr=[[below], [above]],
                    fmt=style.marker,
                    color=style.colour,
                    markersize=5,
                    capsize=2,
                    elinewidth=1.0,
                )
        ax.set_xticks(range(len(in_panel)), labels=[g.task for g, _, _ in in_panel])
        ax.set_xlim(-0.5, len(in_panel) - 0.5)
        ax.set_title(dataset if len(kernels) == 1 else f"{dataset} {MIDDOT} {kernel}", fontsize=10)
        ax.grid(axis="y")
        ax.set_axisbelow(True)
        if index % n_cols == 0:
            ax.set_ylabel(overview_label(first_metric))
    for index in range(len(panels), n_rows * n_cols):
        axes[index // n_cols][index % n_cols].set_visible(False)
    handles = [
        Line2D([], [], color=styles[m].colour, marker=styles[m].marker, linestyle="none", label=m)
        for m in methods
    ]
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(4, len(methods)), frameon=False
    )

    wins: dict[str, int] = {}
    for _, metric, rows in picked:
        best = ranked_rows(rows, metric).iloc[0]["method"]
        wins[best] = wins.get(best, 0) + 1
    win_words = ", ".join(
        f"{m} in {k}" for m, k in sorted(wins.items(), key=lambda item: (-item[1], item[0]))
    )
    family = family_of(first_metric)
    alt = (
        f"Small multiples of the mean {family} with 95 % confidence intervals: one panel per data "
        f"set{' and kernel' if len(kernels) > 1 else ''} ({len(panels)}), tasks on the x axis, "
        f"{len(methods)} methods. Best ({first_metric.direction}) in each of the {len(picked)} "
        f"data set {TIMES} task {TIMES} kernel combinations: {win_words}."
    )
    variants = sorted({(g.task, m.name) for g, m, _ in picked}, key=lambda t: task_order(t[0]))
    caption = (
        f"{family}, {first_metric.direction}. {ci_caption()} Metric per task: "
        + ", ".join(f"{name} ({task})" for task, name in dedupe(variants))
        + ". n per method and group as in the per-group charts."
    )
    return Drawn(
        OVERVIEW_KEY,
        f"overview-{kind}",
        f"{family} per method and task {EN_DASH} overview",
        alt,
        caption,
        figure,
    )


def overview_label(metric: ChartMetric) -> str:
    unit = f" ({metric.unit.strip()})" if metric.unit else ""
    return f"{family_of(metric)}{unit}; {metric.direction}"


def family_of(metric: ChartMetric) -> str:
    """``PSNR`` or ``LPIPS``: the overview groups variants of one family."""
    return metric.info.family


def dedupe(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# Training curves: (history column, axis label, whether lower is better).
TRAINING_PANELS = (
    ("loss", "training loss (mean since the previous row)", True),
    ("val_psnr_y", "validation PSNR-Y (dB)", False),
    ("val_lpips", "validation LPIPS", True),
)


def training_chart(model: str, history: pd.DataFrame) -> Drawn | None:
    """One model's training curves against the iteration: its loss (log scale), then
    validation PSNR-Y and LPIPS where measured; ``None`` for an empty history."""
    panels = [
        (column, label, lower)
        for column, label, lower in TRAINING_PANELS
        if column in history and history[column].notna().any()
    ]
    if history.empty or not panels:
        return None
    figure = Figure(figsize=(FIGURE_WIDTH_IN, 1.9 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    iterations = history["iteration"].to_numpy()
    for ax, (column, label, lower) in zip(axes, panels, strict=True):
        values = history[column].to_numpy(dtype=float)
        ax.plot(iterations, values, marker="o", markersize=3, color="#0072B2")
        if column == "loss" and (values[np.isfinite(values)] > 0).all():
            ax.set_yscale("log")
        ax.set_ylabel(f"{label}\n({'lower' if lower else 'higher'} is better)", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("iteration")
    last = history.iloc[-1]
    words = [f"loss {last['loss']:.4g}"]
    if pd.notna(last.get("val_psnr_y")):
        words.append(f"validation PSNR-Y {last['val_psnr_y']:.2f} dB")
    if pd.notna(last.get("val_lpips")):
        words.append(f"LPIPS {last['val_lpips']:.3f}")
    return Drawn(
        key="training",
        slug=safe(f"training-{model}"),
        title=f"Training of {model}",
        alt=f"Training curves of model {model}: at iteration {int(last['iteration'])}, "
        + ", ".join(words)
        + ".",
        caption="One point per validation; the loss is the mean over the iterations since the "
        "previous point; PSNR-Y and SSIM-Y with BasicSR's conventions on the 8-bit outputs.",
        figure=figure,
    )
