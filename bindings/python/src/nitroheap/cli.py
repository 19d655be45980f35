"""The command line: python3 -m nitroheap top PID | report FILE [--html OUT] | pprof FILE -o OUT |
stats [PID]."""

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import time

from . import _live
from . import _safe
from ._pprof import SAMPLE_TYPES, recording_to_pprof
from ._safe import UnsafeFileError, printable
from ._errors import NitroHeapError, RecordingError
from .recording import format_bytes, format_duration, read_flight_recorder

PROG = "nitroheap"
CLEAR = "\x1b[H\x1b[2J"


class CliError(Exception):
    """A one-line error for the user; exit status 1."""


# ---- formatting helpers -----------------------------------------------------

def num(n):
    return "{:,}".format(int(n))


def pct(part, whole):
    return "%.1f%%" % (100.0 * part / whole) if whole else "-"


def rate(now, before, key, dt):
    if before is None or dt <= 0:
        return "-"
    return num(max(0, now.get(key, 0) - before.get(key, 0)) / dt)


def table(headers, rows, align=None):
    """Fixed-width text table; numbers right-aligned unless align says 'l'."""
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for r in cells:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        out.append("  ".join(parts).rstrip())
    return out


def fit_table(headers, rows, width=None, align=None, drop=()):
    """table(), narrowed to `width` columns of text: the columns named in
    `drop` go first, in that order, until the table fits; a table that still
    does not fit has its lines cut at the width."""
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    keep = list(range(len(headers)))

    def render():
        return table([headers[i] for i in keep], [[r[i] for i in keep] for r in rows], [align[i] for i in keep])

    lines = render()
    for name in drop:
        if width is None or max((len(x) for x in lines), default=0) <= width:
            break
        if name in headers and headers.index(name) in keep:
            keep.remove(headers.index(name))
            lines = render()
    return [clip(x, width) for x in lines]


def clip(line, width):
    """The line cut to `width` characters, a cut one ending in '>'."""
    if width is None or len(line) <= width:
        return line
    return line[:max(width - 1, 0)] + ">"


def pack(fields, width, indent="  "):
    """Fields joined by two spaces, wrapped onto as many lines as `width`
    needs (never inside a field; a field longer than a line is cut)."""
    if width is None:
        return ["  ".join(fields)]
    lines, cur = [], ""
    for f in fields:
        cand = f if not cur else cur + "  " + f
        if cur and len(cand) > width:
            lines.append(cur)
            cand = indent + f
        cur = cand
    if cur:
        lines.append(cur)
    return [clip(x, width) for x in lines]


def utc(ns):
    if not ns:
        return "-"
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def process_name(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"
    return cmd if len(cmd) <= 70 else cmd[:67] + "..."


# ---- top ----------------------------------------------------------------------

# Columns `top` drops first when the terminal is narrow, least useful first.
PARTITION_DROP = ["middle", "tcache", "free cached", "slabs", "slab used", "mapped", "live objs"]
CLASS_DROP = ["middle objs", "tcache objs", "slab objs", "live/slab", "slabs", "allocs", "slab used"]


CONTRACT_DROP = ["last pressure", "callbacks"]


def contract_lines(doc, width):
    """Heap contracts: the process limit on one line when one is set, and a
    table of the partitions with a hard or soft limit; nothing otherwise."""
    def limit(n):
        return format_bytes(n) if n else "-"

    def ago(ns):
        return "%.1f s ago" % max((doc.get("time_ns", 0) - ns) / 1e9, 0.0) if ns else "never"

    lines = []
    if doc.get("memory_limit_hard_limit", 0) or doc.get("memory_limit_soft_limit", 0):
        lines += pack(["memory limit %s (%s)" % (limit(doc.get("memory_limit_hard_limit", 0)),
                                                 doc.get("memory_limit_source", "?")),
                       "use %s" % format_bytes(doc.get("memory_limit_use", 0)),
                       "pressure at %s" % limit(doc.get("memory_limit_soft_limit", 0)),
                       "crossings %s" % num(doc.get("memory_limit_crossings", 0)),
                       "refused %s" % num(doc.get("memory_limit_refusals", 0)),
                       "last pressure %s" % ago(doc.get("memory_limit_last_pressure_ns", 0))], width)
    rows = []
    name_width = None if width is None else max(10, width // 5)
    for name, c in sorted(doc.get("partitions", {}).items()):
        if not (c.get("contract_hard_limit", 0) or c.get("contract_soft_limit", 0)):
            continue
        rows.append([clip(name, name_width), format_bytes(c.get("contract_use", 0)),
                     limit(c.get("contract_hard_limit", 0)), limit(c.get("contract_soft_limit", 0)),
                     num(c.get("contract_crossings", 0)), num(c.get("contract_callbacks", 0)),
                     num(c.get("contract_refusals", 0)), ago(c.get("contract_last_pressure_ns", 0))])
    if rows:
        lines.append("")
        lines.append("CONTRACTS (%d)" % len(rows))
        lines += fit_table(["partition", "use", "hard", "soft", "crossings", "callbacks", "refused",
                            "last pressure"], rows, width, drop=CONTRACT_DROP)
    return lines


def movable_lines(doc, width):
    """The movable heap (nitroheap/movable.h) in one or two lines once it
    was used; nothing otherwise."""
    if not (doc.get("movable_live_objects", 0) or doc.get("movable_compactions", 0)
            or doc.get("movable_handle_capacity", 0)):
        return []
    return pack(["movable %s objects, %s in %s slabs"
                 % (num(doc.get("movable_live_objects", 0)), format_bytes(doc.get("movable_live_bytes", 0)),
                    num(doc.get("movable_slabs", 0))),
                 "compactions %s (%.2f s)" % (num(doc.get("movable_compactions", 0)),
                                              doc.get("movable_compact_ns", 0) / 1e9),
                 "moved %s objects, %s" % (num(doc.get("movable_objects_moved", 0)),
                                           format_bytes(doc.get("movable_bytes_moved", 0))),
                 "slabs freed %s" % num(doc.get("movable_slabs_freed", 0)),
                 "returned %s" % format_bytes(doc.get("movable_pages_returned", 0) * 4096),
                 "pinned skipped %s" % num(doc.get("movable_pinned_skipped", 0))], width)


def render_top(pid, doc, header, prev, iteration, iterations, max_classes, width=None, height=None):
    """One screen of `top` as a list of lines (no clear sequence).

    width: fit every line in this many columns (fewer columns, wrapped
    summary lines); None: no limit. height: with max_classes None, list as
    many size classes as fit in this many lines.
    """
    lines = []
    dt = (doc.get("time_ns", 0) - prev.get("time_ns", 0)) / 1e9 if prev else 0
    age = (time.time_ns() - header.get("update_time_ns", 0)) / 1e9 if header.get("update_time_ns") else 0
    it = "%d/%d" % (iteration, iterations) if iterations else str(iteration)
    lines.append(clip("NitroHeap top - pid %d  %s" % (pid, process_name(pid)), width))
    lines += pack(["heap %s, hardening %s, %d threads;" % (doc.get("heap_mode", "?"), doc.get("hardening_mode", "?"),
                                                          doc.get("threads", 0)),
                   "segment update #%s, %.2f s old;" % (num(header.get("updates", 0)), max(age, 0.0)),
                   "refresh %s" % it], width)
    lines += pack(["allocations %s (%s/s)" % (num(doc.get("allocations", 0)), rate(doc, prev, "allocations", dt)),
                   "frees %s (%s/s)" % (num(doc.get("frees", 0)), rate(doc, prev, "frees", dt)),
                   "live %s objects, %s (requested %s)"
                   % (num(doc.get("live_objects", 0)), format_bytes(doc.get("live_bytes", 0)),
                      format_bytes(doc.get("live_requested_bytes", 0)))], width)
    lines += pack(["mapped %s" % format_bytes(doc.get("mapped_bytes", 0)),
                   "committed %s" % format_bytes(doc.get("committed_bytes", 0)),
                   "free cached %s" % format_bytes(doc.get("free_cached_bytes", 0)),
                   "returned %s" % format_bytes(doc.get("returned_bytes", 0)),
                   "quarantine %s" % format_bytes(doc.get("quarantine_bytes", 0)),
                   "thread caches %s" % format_bytes(doc.get("thread_cache_bytes", 0)),
                   "middle layer %s" % format_bytes(doc.get("middle_layer_bytes", 0)),
                   "lock contention %s" % num(doc.get("lock_contention", 0)),
                   "sampled %s" % num(doc.get("sampled_allocations", 0))], width)
    lines += contract_lines(doc, width)
    lines += movable_lines(doc, width)
    lines.append("")
    parts = doc.get("partitions", {})
    prev_parts = (prev or {}).get("partitions", {})
    rows = []
    # Partition names (up to 31 bytes) give way to numbers on a narrow screen.
    name_width = None if width is None else max(10, width // 5)
    for name, c in sorted(parts.items(), key=lambda kv: (kv[0] != "default", -kv[1].get("live_bytes", 0))):
        so = c.get("slab_objects", 0)
        rows.append([clip(name, name_width), num(c.get("live_objects", 0)), format_bytes(c.get("live_bytes", 0)),
                     format_bytes(c.get("mapped_bytes", 0)), format_bytes(c.get("committed_bytes", 0)),
                     format_bytes(c.get("free_cached_bytes", 0)), num(c.get("slabs", 0)),
                     pct(so - c.get("slab_free_objects", 0), so),
                     format_bytes(c.get("thread_cache_bytes", 0)), format_bytes(c.get("middle_layer_bytes", 0)),
                     rate(c, prev_parts.get(name) if prev else None, "allocations", dt)])
    lines.append("PARTITIONS (%d)" % len(parts))
    lines += fit_table(["partition", "live objs", "live bytes", "mapped", "committed", "free cached",
                        "slabs", "slab used", "tcache", "middle", "allocs/s"], rows, width, drop=PARTITION_DROP)
    lines.append("")
    classes = doc.get("size_classes", [])
    prev_classes = {c.get("size"): c for c in (prev or {}).get("size_classes", [])}
    used = [c for c in classes if c.get("slabs", 0) or c.get("live_objects", 0)
            or c.get("thread_cache_objects", 0) or c.get("middle_layer_objects", 0)]
    used.sort(key=lambda c: -(c.get("live_objects", 0) * c.get("size", 0)))
    if max_classes is None and height is not None:
        # The title, the table's header and the cursor's line take three.
        max_classes = max(1, height - len(lines) - 3)
    shown = used if max_classes is None else used[:max_classes]
    rows = []
    for c in shown:
        so = c.get("slab_objects", 0)
        rows.append([num(c.get("size", 0)), num(c.get("live_objects", 0)),
                     format_bytes(c.get("live_objects", 0) * c.get("size", 0)), num(c.get("slabs", 0)),
                     num(so), pct(so - c.get("slab_free_objects", 0), so), pct(c.get("live_objects", 0), so),
                     num(c.get("thread_cache_objects", 0)), num(c.get("middle_layer_objects", 0)),
                     num(c.get("allocations", 0)),
                     rate(c, prev_classes.get(c.get("size")) if prev else None, "allocations", dt)])
    lines.append(clip("SIZE CLASSES (default partition: %d of %d in use, by live bytes%s)"
                      % (len(used), len(classes), "" if len(shown) == len(used) else "; top %d" % len(shown)),
                      width))
    lines += fit_table(["size", "live objs", "live bytes", "slabs", "slab objs", "slab used", "live/slab",
                        "tcache objs", "middle objs", "allocs", "allocs/s"], rows, width, ["r"] * 11,
                       drop=CLASS_DROP)
    return lines


def terminal_size(args):
    """(width, height) to fit, or (None, None) to print everything: --width,
    else the terminal's (or COLUMNS/LINES when set) when stdout is one."""
    env_cols = os.environ.get("COLUMNS", "").isdigit()
    if not sys.stdout.isatty() and not env_cols and args.width is None:
        return None, None
    size = shutil.get_terminal_size((120, 40))
    width = args.width if args.width is not None else size.columns
    height = size.lines if sys.stdout.isatty() else None
    return width, height


def cmd_top(args):
    if args.interval <= 0:
        raise CliError("--interval must be > 0")
    if args.iterations is not None and args.iterations < 1:
        raise CliError("--iterations must be >= 1")
    if args.width is not None and args.width < 40:
        raise CliError("--width must be at least 40")
    try:
        view = _live.attach(args.pid)
    except NitroHeapError as e:
        raise CliError(str(e))
    clear = not args.no_clear
    max_classes = args.classes
    width, height = terminal_size(args)
    prev = None
    i = 0
    try:
        while True:
            i += 1
            try:
                header = view.header()
                doc = view.stats()
            except NitroHeapError as e:
                if i == 1:
                    raise CliError(str(e))
                print("%s top: process %d is gone or stopped publishing: %s" % (PROG, args.pid, printable(e)),
                      file=sys.stderr)
                return 0
            lines = render_top(args.pid, doc, header, prev, i, args.iterations, max_classes, width, height)
            # Names and modes come from the segment, the command line from
            # /proc: none of it reaches the terminal as control characters.
            out = (CLEAR if clear else "") + printable("\n".join(lines), keep_newlines=True) + "\n"
            sys.stdout.write(out)
            sys.stdout.flush()
            prev = doc
            if args.iterations and i >= args.iterations:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 0


# ---- report ---------------------------------------------------------------------

BY_TITLES = {
    "estimated_bytes": "estimated bytes (each sample scaled by 1/P(sampled), as pprof ranks)",
    "estimated_count": "estimated allocations (each sample scaled by 1/P(sampled))",
    "bytes": "sampled bytes (large allocations dominate: each is far likelier to be sampled)",
    "count": "samples",
    "live_bytes": "sampled bytes still live at the dump",
    "live_count": "samples still live at the dump",
}


def report_lines(rec, top=10, by="estimated_bytes", group="function"):
    s = rec.summary()
    p = rec.process
    lines = ["NitroHeap flight recording %s" % rec.path, ""]
    run = (rec.dump_time_ns - p.start_time_ns) if p.start_time_ns and rec.dump_time_ns else 0
    lines.append("process      pid %d  %s" % (p.pid, p.executable or "?"))
    lines.append("command      %s" % (p.command_line.replace("\n", "\\n")[:200] or "?"))
    lines.append("heap         %s, hardening %s; started %s, dumped %s (%s later)"
                 % (p.heap_mode or "?", p.hardening_mode or "?", utc(p.start_time_ns), utc(rec.dump_time_ns),
                    format_duration(run) if run else "-"))
    if rec.sample_interval_bytes:
        lines.append("sampling     one sample per %s allocated on average (profile_rate); %s events "
                     "overwritten in the ring before the dump"
                     % (format_bytes(rec.sample_interval_bytes), num(rec.dropped_events)))
    else:
        lines.append("sampling     off (profile_rate=0): the recording has no events")
    lines.append("events       %s sampled: %s freed, %s live at the dump; %s requested in samples "
                 "(~%s estimated in all allocations)"
                 % (num(s["events"]), num(s["freed"]), num(s["live"]), format_bytes(s["sampled_bytes"]),
                    format_bytes(s["estimated_bytes"])))
    if rec.moves:
        lines.append("moves        %s moves of sampled movable objects (%s; compaction, nitro_hrealloc): "
                     "each allocation above is listed at its latest address"
                     % (num(len(rec.moves)), format_bytes(sum(m.size for m in rec.moves))))
    lines.append("threads      %d; partitions: %s" % (s["threads"], ", ".join(s["partitions"]) or "-"))
    st = rec.stats
    if st:
        lines.append("stats        %s allocations, %s frees, %s live objects (%s); mapped %s, committed %s"
                     % (num(st.get("allocations", 0)), num(st.get("frees", 0)), num(st.get("live_objects", 0)),
                        format_bytes(st.get("live_bytes", 0)), format_bytes(st.get("mapped_bytes", 0)),
                        format_bytes(st.get("committed_bytes", 0))))
    opts = ", ".join("%s=%s" % kv for kv in sorted(rec.options.items()) if kv[1] != "")
    lines.append("options      %s" % (opts or "-"))
    lines.append("")
    sites = rec.top_sites(top, by=by, group=group)
    lines.append("TOP %d ALLOCATION SITES by %s; grouped by %s (--by, --group)"
                 % (len(sites), BY_TITLES.get(by, by), group))
    rows = []
    for i, site in enumerate(sites, 1):
        rows.append([str(i), format_bytes(site.estimated_bytes), "%.1f%%" % (100 * site.share),
                     format_bytes(site.bytes), num(site.count), format_bytes(site.live_bytes),
                     "%s (%s)" % (site.function, site.object or "?") if site.named else site.function])
    lines += table(["#", "est. bytes", "share", "sampled bytes", "samples", "live bytes", "function (object)"],
                   rows, ["r", "r", "r", "r", "r", "r", "l"])
    if not sites:
        lines.append("  (no sampled events)")
    for i, site in enumerate(sites[:min(5, len(sites))], 1):
        lines.append("  #%d stack: %s" % (i, " <- ".join(site.stack[:6]) or "(none)"))
    lines.append("")
    lines.append(rec.size_histogram().format())
    lines.append("")
    lines.append(rec.lifetime_histogram().format())
    return lines


def write_html(rec, out_path, top=10, by="estimated_bytes", group="function", mode=0o600):
    from . import _html
    _html.write_report(rec, out_path, report_lines(rec, top, by, group), top, by, group, mode)


def read_recording(path):
    try:
        return read_flight_recorder(path)
    except FileNotFoundError:
        raise CliError("cannot read %s: no such file" % path)
    except IsADirectoryError:
        raise CliError("cannot read %s: it is a directory" % path)
    except UnsafeFileError as e:
        raise CliError("not read: %s" % e.strerror)
    except OSError as e:
        raise CliError("cannot read %s: %s" % (path, e.strerror or e))
    except RecordingError as e:
        raise CliError(str(e))


def cmd_report(args):
    rec = read_recording(args.file)
    print(printable("\n".join(report_lines(rec, args.top, args.by, args.group)), keep_newlines=True))
    if args.html:
        try:
            write_html(rec, args.html, args.top, args.by, args.group, args.mode)
        except ImportError as e:
            raise CliError("--html needs matplotlib (Debian: python3-matplotlib): %s" % e)
        except OSError as e:
            raise CliError("cannot write %s: %s" % (args.html, e.strerror or e))
        print("\nHTML report written to %s" % args.html)
    return 0


# ---- pprof ----------------------------------------------------------------------

def cmd_pprof(args):
    rec = read_recording(args.file)
    data = recording_to_pprof(rec, args.sample_index)
    try:
        _safe.write_atomic(args.output, data, args.mode)
    except OSError as e:
        raise CliError("cannot write %s: %s" % (args.output, e.strerror or e))
    print("%s: pprof heap profile of %d events (default view %s); open it with: go tool pprof %s"
          % (args.output, len(rec.events), args.sample_index, args.output))
    return 0


# ---- stats ----------------------------------------------------------------------

def cmd_stats(args):
    try:
        doc = _live.attach(args.pid).stats() if args.pid is not None else _live.stats()
    except NitroHeapError as e:
        raise CliError(str(e))
    if not args.classes:
        doc = {k: v for k, v in doc.items() if k != "size_classes"}
    print(json.dumps(doc, indent=2))
    return 0


# ---- main -----------------------------------------------------------------------

def file_mode(text):
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError("%r is not permission bits in octal (0 to 0777, such as 0600)" % text)
    return mode


def build_parser():
    p = argparse.ArgumentParser(prog="python3 -m nitroheap",
                                description="NitroHeap observability: live heap views and flight recordings.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("top", help="live view of another process's heap (/dev/shm/nitroheap.<pid>)")
    t.add_argument("pid", type=int, help="process id of a program running NitroHeap with telemetry=1")
    t.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes (1)")
    t.add_argument("--iterations", "-n", type=int, default=None, metavar="N",
                   help="stop after N refreshes (default: until Ctrl-C)")
    t.add_argument("--classes", type=int, default=None, metavar="N",
                   help="show at most N size classes (default: fit the terminal; all when not a terminal)")
    t.add_argument("--no-clear", action="store_true", help="do not clear the screen between refreshes")
    t.add_argument("--width", type=int, default=None, metavar="COLS",
                   help="fit lines in COLS columns (default: the terminal's width, or COLUMNS; "
                        "no limit when not a terminal)")
    t.set_defaults(func=cmd_top)

    r = sub.add_parser("report", help="summary of a flight recording, optionally as HTML with charts")
    r.add_argument("file", help="a FlightRecording file (NITROHEAP_OPTIONS=flight_recorder=PATH)")
    r.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page with charts")
    r.add_argument("--mode", type=file_mode, default=0o600, metavar="OCTAL",
                   help="permission bits of the HTML file (0600); it is written to a new file and "
                        "renamed into place, never through a link at the path")
    r.add_argument("--top", type=int, default=10, metavar="N", help="allocation sites to list (10)")
    r.add_argument("--by", default="estimated_bytes",
                   choices=["estimated_bytes", "estimated_count", "bytes", "count", "live_bytes", "live_count"],
                   help="rank sites by (estimated_bytes: sampled bytes scaled by the sampling probability, "
                        "as pprof does; bytes: the sampled bytes themselves)")
    r.add_argument("--group", default="function", choices=["function", "site", "stack"],
                   help="aggregate by the first non-allocator function, its call site, or the whole stack")
    r.set_defaults(func=cmd_report)

    pp = sub.add_parser("pprof", help="convert a flight recording into a pprof heap profile (.pb.gz)")
    pp.add_argument("file", help="a FlightRecording file")
    pp.add_argument("-o", "--output", required=True, metavar="OUT",
                    help="the gzip-compressed pprof profile to write (such as heap.pb.gz)")
    pp.add_argument("--sample-index", default="alloc_space", choices=list(SAMPLE_TYPES),
                    help="pprof's default view (alloc_space: every sampled allocation; "
                         "inuse_space: those live at the dump)")
    pp.add_argument("--mode", type=file_mode, default=0o600, metavar="OCTAL",
                    help="permission bits of OUT (0600); written to a new file and renamed into place")
    pp.set_defaults(func=cmd_pprof)

    s = sub.add_parser("stats", help="print the statistics of a process (or of this one) as JSON")
    s.add_argument("pid", type=int, nargs="?", help="process id (default: this process; needs NitroHeap preloaded)")
    s.add_argument("--classes", action="store_true", help="include the 88 size classes")
    s.set_defaults(func=cmd_stats)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print("%s %s: error: %s" % (PROG, args.command, printable(e)), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `... | head`: stop quietly.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
