"""The self-contained HTML report of a flight recording (matplotlib, Agg)."""

import base64
import html
import io

from . import _safe
from .recording import format_bytes, format_duration


def _matplotlib():
    import matplotlib
    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt
    return plt


def _png(plt, fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _histogram_chart(plt, hist, color, xlabel):
    labels = [hist.label(i) for i in range(len(hist))]
    # Drop empty bins at both ends so the chart shows the data.
    lo, hi = hist.nonempty_range()
    if lo == hi:
        lo, hi = 0, len(hist.counts)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    xs = list(range(hi - lo))
    ax.bar(xs, hist.counts[lo:hi], color=color, edgecolor="black", linewidth=0.4)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels[lo:hi], rotation=40, ha="right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sampled allocations")
    title = hist.title
    if hist.excluded:
        title += " (%d %s)" % (hist.excluded, hist.excluded_label)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _sites_chart(plt, sites, by):
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(sites), 2) + 1.2))
    names = [s.function if len(s.function) <= 60 else s.function[:57] + "..." for s in sites][::-1]
    values = [getattr(s, by) for s in sites][::-1]
    live = [s.live_bytes if by.endswith("bytes") else s.live_count for s in sites][::-1]
    ys = list(range(len(sites)))
    ax.barh(ys, values, color="#4c72b0", label=by.replace("_", " "))
    if by in ("bytes", "count"):
        ax.barh(ys, live, color="#dd8452", label="still live at the dump")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(ys)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel(by.replace("_", " ") + (" (samples scaled by 1/P(sampled))" if by.startswith("estimated")
                                          else " (in the samples)"))
    if by.endswith("bytes"):
        from matplotlib.ticker import FuncFormatter
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_bytes(v)))
    ax.set_title("Top allocation sites by %s" % by.replace("_", " "), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


# Tables never widen the page: each sits in a box that scrolls sideways,
# and long names and stacks wrap inside capped cells.
_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
div.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; vertical-align: top; white-space: nowrap; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
td.wrap { white-space: normal; overflow-wrap: anywhere; word-break: break-word; min-width: 12em; max-width: 32em; }
code, pre { font-size: 0.85em; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _stat(key, value):
    """A statistic as people read it: bytes in KiB/MiB/GiB, counts with
    thousands separators; the exact value stays in the cell's title."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value)), ""
    exact = "{:,}".format(int(value)) if float(value).is_integer() else str(value)
    if key.endswith("_bytes") or key in ("bytes",):
        return html.escape(format_bytes(value)), exact
    if key.endswith("_ns"):
        return html.escape(format_duration(value)), exact
    if key in ("pid", "version", "size"):
        return html.escape(str(value)), ""
    return html.escape(exact), ""


def _stat_cell(key, value, css=""):
    text, title = _stat(key, value)
    attrs = (' class="%s"' % css if css else "") + (' title="%s"' % html.escape(title) if title else "")
    return "<td%s>%s</td>" % (attrs, text)


def write_report(rec, out_path, text_lines, top=10, by="estimated_bytes", group="function", mode=0o600):
    plt = _matplotlib()
    size_h = rec.size_histogram()
    life_h = rec.lifetime_histogram()
    sites = rec.top_sites(top, by=by, group=group)
    charts = [
        ("Requested sizes", _png(plt, _histogram_chart(plt, size_h, "#55a868", "requested size"))),
        ("Lifetimes", _png(plt, _histogram_chart(plt, life_h, "#8172b2", "lifetime (free - alloc)"))),
    ]
    if sites:
        charts.append(("Top allocation sites", _png(plt, _sites_chart(plt, sites, by))))
    e = html.escape
    p = rec.process
    s = rec.summary()
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
           "<title>NitroHeap flight recording: pid %d</title>" % p.pid,
           "<style>%s</style></head><body>" % _CSS,
           "<h1>NitroHeap flight recording &mdash; pid %d</h1>" % p.pid,
           "<div class=\"scroll\"><table>"]
    facts = [
        ("file", rec.path), ("executable", p.executable), ("command line", p.command_line),
        ("heap mode", "%s, hardening %s" % (p.heap_mode, p.hardening_mode)),
        ("sampled events", "%d (%d freed, %d live at the dump; %d dropped)"
         % (s["events"], s["freed"], s["live"], rec.dropped_events)),
        ("sampled bytes", "%s (~%s estimated)" % (format_bytes(s["sampled_bytes"]),
                                                  format_bytes(s["estimated_bytes"]))),
        ("sample interval", format_bytes(rec.sample_interval_bytes)),
        ("threads / partitions", "%d / %s" % (s["threads"], ", ".join(s["partitions"]))),
    ]
    if p.start_time_ns and rec.dump_time_ns:
        facts.append(("run time before dump", format_duration(rec.dump_time_ns - p.start_time_ns)))
    for k, v in facts:
        out.append("<tr><th class=\"l\">%s</th><td class=\"l wrap\">%s</td></tr>" % (e(k), e(str(v))))
    out.append("</table></div>")
    for title, png in charts:
        out.append("<h2>%s</h2>" % e(title))
        out.append("<img alt=\"%s\" src=\"data:image/png;base64,%s\">" % (e(title), png))
    from .cli import BY_TITLES
    out.append("<h2>Top allocation sites</h2><p>Ranked by %s; grouped by %s.</p>"
               % (e(BY_TITLES.get(by, by)), e(group)))
    out.append("<div class=\"scroll\"><table><tr><th>#</th><th>est. bytes</th><th>share</th>"
               "<th>sampled bytes</th><th>samples</th><th>live bytes</th>"
               "<th class=\"l\">function</th><th class=\"l\">object</th>"
               "<th class=\"l\">stack (innermost first)</th></tr>")
    for i, site in enumerate(sites, 1):
        out.append("<tr><td>%d</td><td>%s</td><td>%.1f%%</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td class=\"l wrap\"><code>%s</code></td><td class=\"l wrap\">%s</td>"
                   "<td class=\"l wrap\"><code>%s</code></td></tr>"
                   % (i, format_bytes(site.estimated_bytes), 100 * site.share, format_bytes(site.bytes),
                      "{:,}".format(site.count), format_bytes(site.live_bytes), e(site.function), e(site.object),
                      "<br>".join(e(x) for x in site.stack[:8])))
    out.append("</table></div>")
    if rec.stats:
        out.append("<h2>Statistics at the dump</h2><div class=\"scroll\"><table>")
        for k, v in rec.stats.items():
            if isinstance(v, (dict, list)):
                continue
            out.append("<tr><th class=\"l\">%s</th>%s</tr>" % (e(k), _stat_cell(k, v)))
        out.append("</table></div>")
        parts = rec.stats.get("partitions", {})
        if parts:
            keys = list(next(iter(parts.values())).keys())
            out.append("<h2>Partitions at the dump</h2><div class=\"scroll\"><table>"
                       "<tr><th class=\"l\">partition</th>%s</tr>"
                       % "".join("<th>%s</th>" % e(k.replace("_", " ")) for k in keys))
            for name, c in parts.items():
                out.append("<tr><td class=\"l\">%s</td>%s</tr>" % (e(name), "".join(
                    _stat_cell(k, c.get(k, "")) for k in keys)))
            out.append("</table></div>")
    if rec.options:
        out.append("<h2>Options</h2><div class=\"scroll\"><table>")
        for k, v in sorted(rec.options.items()):
            out.append("<tr><th class=\"l\">%s</th><td class=\"l wrap\">%s</td></tr>" % (e(k), e(v)))
        out.append("</table></div>")
    out.append("<h2>Text report</h2><pre>%s</pre>" % e("\n".join(text_lines)))
    out.append("</body></html>")
    _safe.write_atomic(out_path, ("\n".join(out) + "\n").encode("utf-8"), mode)
    return out_path

