"""The Plotly figures the pages draw, built from the plain data that bmcore returns."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bmcore.display import plot_text, plot_texts
from bmcore.report import examples as rex
from bmcore.report import fmt

TWO_HUES = ("#4F46E5", "#F59E0B")  # two clearly different hues: the theme's default palette is all blues
METRIC_COLORS = {"precision": "#4F46E5", "recall": "#F59E0B", "f1": "#10B981"}
CALIB_COLORS = {"before": "#EF4444", "after temperature": "#4F46E5"}
DIAGONAL = {"type": "line", "x0": 0, "y0": 0, "x1": 1, "y1": 1, "line": {"dash": "dot", "color": "#9CA3AF"}}
LOSSES = ("training loss", "validation loss")
LEGEND_TOP = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"}


def axis_style(k: int, names: list[str]) -> dict:
    """Tick settings that stay readable from 2 to 20+ classes."""
    long = max((len(n) for n in names), default=0)
    return {"tickfont": {"size": 13 if k <= 6 else 11 if k <= 12 else 10},
            "tickangle": -40 if k > 6 or long * k > 60 else 0, "automargin": True}


def curve(frame: pd.DataFrame, title: str, y_label: str, by_metric: bool = True, **kwargs) -> go.Figure:
    """A training curve: value by step, one line per metric (or one line, with ``by_metric`` off)."""
    kwargs.setdefault("color_discrete_sequence", TWO_HUES)
    return px.line(frame, x="step", y="value", color="metric" if by_metric else None, markers=True, title=title,
                   labels={"value": y_label, "metric": ""}, **kwargs)


def train_curves(frame: pd.DataFrame) -> tuple[go.Figure, go.Figure | None]:
    """A fine-tuning run's loss curves, and its validation scores once there are some, from
    ``report.train_curves_frame`` (scores from 0 to 1 on a fixed axis; a correlation can fall below 0)."""
    scores = frame[frame["metric"].str.startswith("validation ") & ~frame["metric"].isin(LOSSES)]
    fixed = not scores.empty and scores["value"].between(0, 1).all()
    return (curve(frame[frame["metric"].isin(LOSSES)], "Loss", "loss"),
            None if scores.empty else curve(scores, "Validation scores", "score", range_y=(0, 1.02) if fixed else None))


def pretrain_curves(frame: pd.DataFrame) -> tuple[go.Figure, go.Figure | None]:
    """A pretraining run's MLM losses, and its held-out perplexity once measured, from ``pretrain.curves_frame``."""
    ppl = frame[frame["metric"] == "validation perplexity"]
    return (curve(frame[frame["metric"] != "validation perplexity"], "MLM loss", "loss"),
            None if ppl.empty else curve(ppl, "Held-out perplexity (log scale)", "perplexity", by_metric=False,
                                         log_y=True, color_discrete_sequence=("#059669",)))


def confusion_figure(matrix: list[list[int]], names: list[str], normalised: bool) -> go.Figure:
    """The confusion matrix (rows gold) with an invisible, clickable marker on every cell."""
    k = len(names)
    names = plot_texts(names)  # the labels as plotly shows them (a click returns them; the page maps them back)
    counts = pd.DataFrame(matrix, index=names, columns=names)
    share = rex.normalize_confusion(matrix)
    z = share if normalised else counts.to_numpy()
    show_text = k <= 12
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale="Blues", zmin=0, zmax=1 if normalised else None, hoverinfo="skip",
        text=[[f"{v:.0%}" if normalised else f"{int(c):,}" for v, c in zip(sr, cr, strict=True)]
              for sr, cr in zip(share, counts.to_numpy(), strict=True)] if show_text else None,
        texttemplate="%{text}" if show_text else None,
        textfont={"size": 16 if k <= 4 else 13 if k <= 8 else 10},
        colorbar={"title": {"text": "share of gold" if normalised else "examples"}, "thickness": 12}))
    # An invisible marker on every cell carries the hover text and receives clicks (heatmaps give no selection events).
    gx, gy, hover = [], [], []
    for i, g in enumerate(names):
        for j, p in enumerate(names):
            gx.append(p)
            gy.append(g)
            hover.append(f"gold <b>{g}</b> → predicted <b>{p}</b><br>{int(counts.iat[i, j]):,} examples "
                         f"({share[i, j]:.1%} of {g})<br>click to list them")
    size = max(8, min(60, int(500 / k)))
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="markers", marker={"size": size, "symbol": "square", "opacity": 0},
                             hovertext=hover, hoverinfo="text", showlegend=False,
                             selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}}))
    height = min(900, max(360, 160 + 34 * k))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, clickmode="event+select",
                      dragmode=False, title={"text": "Confusion matrix (rows gold, columns predicted)", "font": {"size": 15}})
    # Fixed ranges: otherwise plotly pads the axes to fit the (invisible) markers and the cells shrink.
    fig.update_xaxes(title="predicted", range=[-0.5, k - 0.5], **axis_style(k, names))
    fig.update_yaxes(title="gold", range=[k - 0.5, -0.5], **{**axis_style(k, names), "tickangle": 0})
    return fig


def per_class_figure(frame: pd.DataFrame, names: list[str]) -> go.Figure:
    """Grouped bars of precision, recall and F1 per class, from :func:`bmcore.report.examples.per_class_frame`."""
    fig = px.bar(frame.assign(**{"class": plot_texts(frame["class"])}), x="class", y="value", color="metric",
                 barmode="group", range_y=(0, 1.05), color_discrete_map=METRIC_COLORS, hover_data={"support": True},
                 category_orders={"class": plot_texts(names)}, labels={"value": "score", "class": "", "metric": ""},
                 title="Precision, recall and F1 per class")
    fig.update_xaxes(**axis_style(len(names), names))
    fig.update_layout(legend=LEGEND_TOP, margin={"t": 60})
    return fig


def roc_pr_figures(roc: pd.DataFrame, pr: pd.DataFrame, n_classes: int, title_suffix: str) -> tuple[go.Figure, go.Figure]:
    """The ROC and precision-recall curves, one line per class, from :func:`bmcore.report.evaluation.curve_frames`."""
    palette = px.colors.qualitative.Plotly if n_classes <= 10 else px.colors.qualitative.Alphabet
    # A vertical legend on the right never covers the axis titles, even with 20 classes.
    legend = {"title": None, "font": {"size": 11 if n_classes <= 10 else 9}, "tracegroupgap": 0}
    fig_roc = px.line(roc, x="false positive rate", y="true positive rate", color="class", color_discrete_sequence=palette,
                      title="ROC" + title_suffix, range_x=(0, 1), range_y=(0, 1.02))
    fig_roc.add_shape(**DIAGONAL)
    fig_pr = px.line(pr, x="recall", y="precision", color="class", color_discrete_sequence=palette,
                     title="Precision-recall" + title_suffix, range_x=(0, 1), range_y=(0, 1.02))
    for fig in (fig_roc, fig_pr):
        fig.update_layout(legend=legend, height=460)
    return fig_roc, fig_pr


def reliability_figure(frame: pd.DataFrame, metrics: dict) -> go.Figure:
    """The reliability diagram before (and after) temperature scaling, from :func:`bmcore.report.examples.reliability_frame`."""
    fig = go.Figure()
    fig.add_shape(**DIAGONAL)
    for which, part in frame.groupby("which", sort=False):
        fig.add_trace(go.Scatter(
            x=part["confidence"], y=part["accuracy"], mode="lines+markers", name=which,
            line={"color": CALIB_COLORS.get(which)},
            marker={"size": 6 + 14 * (part["count"] / part["count"].max()) ** 0.5, "color": CALIB_COLORS.get(which)},
            customdata=part[["lower", "upper", "count"]],
            hovertemplate="confidence %{customdata[0]:.2f}-%{customdata[1]:.2f}<br>mean confidence %{x:.3f}"
                          "<br>accuracy %{y:.3f}<br>%{customdata[2]} examples<extra>%{fullData.name}</extra>"))
    title = f"Reliability diagram · ECE {fmt(metrics.get('ece'))}"
    if metrics.get("ece_calibrated") is not None:
        title += f" → {fmt(metrics['ece_calibrated'])} after temperature scaling"
    fig.update_layout(title=title, height=440, xaxis={"title": "mean confidence in bin", "range": [0, 1.02]},
                      yaxis={"title": "accuracy in bin", "range": [0, 1.02]}, legend=LEGEND_TOP)
    return fig


def f1_diff_figure(diffs: pd.DataFrame, names: list[str], shown: str) -> go.Figure:
    """Per-class F1 of this model minus the other (``shown``), from :func:`bmcore.report.evaluation.f1_diff_frame`."""
    fig = px.bar(diffs, x="class", y="F1 difference", color="better", title="Per-class F1: this minus " + shown,
                 color_discrete_map={"this model": "#2563EB", shown: "#DC2626", "same": "#9CA3AF"},
                 category_orders={"class": plot_texts(names)}, hover_data={"this": ":.3f", shown: ":.3f", "better": False},
                 labels={"class": ""})
    fig.update_xaxes(**axis_style(len(names), names))
    fig.update_layout(showlegend=False)
    return fig


def confusion_diff_figure(z: list[list[int]], names: list[str], shown: str) -> go.Figure:
    """This model's confusion counts minus the other's (``shown``)."""
    k = len(names)
    # Colour says who the cell favours: more on the diagonal is good, more off it is bad; the text is the raw difference.
    good = [[v if i == j else -v for j, v in enumerate(row)] for i, row in enumerate(z)]
    span = max(1, max(abs(v) for row in z for v in row))
    fig = go.Figure(go.Heatmap(z=good, x=plot_texts(names), y=plot_texts(names), colorscale="RdBu", zmid=0, zmin=-span,
                               zmax=span, text=[[f"{v:+d}" for v in row] for row in z],
                               texttemplate="%{text}" if k <= 12 else None,
                               textfont={"size": 14 if k <= 6 else 10}, showscale=False,
                               hovertemplate="gold %{y} → predicted %{x}<br>%{text} examples<extra></extra>"))
    fig.update_layout(title="Confusion matrix: this minus " + shown, height=min(900, max(380, 140 + 34 * k)))
    fig.update_xaxes(title="predicted", **axis_style(k, names))
    fig.update_yaxes(title="gold", autorange="reversed", **axis_style(k, names))
    return fig


def label_confusion_figure(matrices: list, names: list[str], shown: list[int], cols: int = 6) -> go.Figure:
    """Small multiples: the 2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` of each label in ``shown`` (indices into
    ``names``), rows gold (no/yes), columns predicted. Every cell has an invisible marker whose customdata is
    ``[label index, cell]`` (cell a key of :data:`bmcore.report.examples.LABEL_CELLS`), so a click can pick it."""
    rows = max(1, -(-len(shown) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[plot_text(names[i]) for i in shown],
                        horizontal_spacing=0.05, vertical_spacing=0.5 / rows)
    axis = ["no", "yes"]
    keys = [["tn", "fp"], ["fn", "tp"]]
    for n, i in enumerate(shown):
        r, c = n // cols + 1, n % cols + 1
        counts = matrices[i]
        share = rex.normalize_confusion(counts)
        fig.add_trace(go.Heatmap(z=share, x=axis, y=axis, colorscale="Blues", zmin=0, zmax=1, showscale=False,
                                 text=[[f"{v:,}" for v in row] for row in counts], texttemplate="%{text}",
                                 hoverinfo="skip"), row=r, col=c)
        label = plot_text(names[i])
        fig.add_trace(go.Scatter(
            x=[axis[b] for a in range(2) for b in range(2)], y=[axis[a] for a in range(2) for b in range(2)],
            customdata=[[i, keys[a][b]] for a in range(2) for b in range(2)], mode="markers", showlegend=False,
            hovertext=[f"<b>{label}</b>: {rex.LABEL_CELLS[keys[a][b]][0]}<br>{counts[a][b]:,} examples<br>click to list them"
                       for a in range(2) for b in range(2)], hoverinfo="text",
            marker={"size": 28, "symbol": "square", "opacity": 0},
            selected={"marker": {"opacity": 0}}, unselected={"marker": {"opacity": 0}}), row=r, col=c)
        fig.update_xaxes(range=[-0.5, 1.5], tickfont={"size": 10}, row=r, col=c)
        fig.update_yaxes(range=[1.5, -0.5], tickfont={"size": 10}, row=r, col=c)
    fig.update_annotations(font={"size": 12})
    fig.update_layout(height=70 + 170 * rows, margin={"l": 10, "r": 10, "t": 50, "b": 10}, clickmode="event+select",
                      dragmode=False, title={"text": "Per label: rows gold (no/yes), columns predicted (no/yes)",
                                             "font": {"size": 15}})
    return fig


def score_scatter_figure(points: pd.DataFrame, span: tuple[float, float]) -> go.Figure:
    """Predicted against gold scores, one point per example with its prediction row as ``customdata`` (what a
    selection returns), and the dotted line y = x over ``span``; from :func:`bmcore.report.regression.scatter_frame`."""
    lo, hi = span
    fig = go.Figure(go.Scatter(
        x=points["gold"], y=points["pred"], mode="markers", customdata=points["row"].to_numpy(),
        text=points["hover"], marker={"size": 6, "opacity": 0.6, "color": points["abs_error"], "colorscale": "Viridis",
                                      "colorbar": {"title": "|error|"}},
        hovertemplate="gold %{x:.3f} · predicted %{y:.3f}<br>%{text}<extra></extra>"))
    fig.add_shape(type="line", x0=lo, y0=lo, x1=hi, y1=hi, line={"dash": "dot", "color": "#9CA3AF"})
    fig.update_layout(title="Predicted against gold score", height=480, dragmode="select",
                      xaxis={"title": "gold score", "range": [lo, hi]},
                      yaxis={"title": "predicted score", "range": [lo, hi]})
    return fig


def error_range_figure(frame: pd.DataFrame) -> go.Figure:
    """MAE and bias (mean signed error) per range of the gold score, each bar labelled with its number of examples;
    from :func:`bmcore.report.regression.error_range_frame`."""
    counts = [f"{int(n):,} ex." for n in frame["n"]]
    fig = go.Figure([go.Bar(x=frame["range"], y=frame["mae"], name="MAE", marker_color=TWO_HUES[0], text=counts,
                            textposition="outside", hovertemplate="gold %{x}<br>MAE %{y:.3f}<br>%{text}<extra></extra>"),
                     go.Bar(x=frame["range"], y=frame["bias"], name="bias (predicted − gold)", marker_color=TWO_HUES[1],
                            hovertemplate="gold %{x}<br>mean signed error %{y:+.3f}<extra></extra>")])
    fig.add_hline(y=0, line={"color": "#9CA3AF", "width": 1})
    fig.update_layout(title="Error by range of the gold score", barmode="group", height=400, legend=LEGEND_TOP,
                      xaxis={"title": "gold score"}, yaxis={"title": "error, in the scores' units"})
    return fig
