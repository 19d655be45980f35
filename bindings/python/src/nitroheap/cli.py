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

def render_top(pid, doc, header, prev, iteration, iterations, max_classes):
    """One screen of `top` as a list of lines (no clear sequence)."""
    lines = []
    dt = (doc.get("time_ns", 0) - prev.get("time_ns", 0)) / 1e9 if prev else 0
    age = (time.time_ns() - header.get("update_time_ns", 0)) / 1e9 if header.get("update_time_ns") else 0
    it = "%d/%d" % (iteration, iterations) if iterations else str(iteration)
    lines.append("NitroHeap top - pid %d  %s" % (pid, process_name(pid)))
    lines.append("heap %s, hardening %s, %d threads; segment update #%s, %.2f s old; refresh %s"
                 % (doc.get("heap_mode", "?"), doc.get("hardening_mode", "?"), doc.get("threads", 0),
                    num(header.get("updates", 0)), max(age, 0.0), it))
    lines.append("allocations %s (%s/s)  frees %s (%s/s)  live %s objects, %s (requested %s)"
                 % (num(doc.get("allocations", 0)), rate(doc, prev, "allocations", dt),
                    num(doc.get("frees", 0)), rate(doc, prev, "frees", dt),
                    num(doc.get("live_objects", 0)), format_bytes(doc.get("live_bytes", 0)),
                    format_bytes(doc.get("live_requested_bytes", 0))))
    lines.append("mapped %s  committed %s  free cached %s  returned %s  quarantine %s  "
                 "thread caches %s  middle layer %s  lock contention %s  sampled %s"
                 % (format_bytes(doc.get("mapped_bytes", 0)), format_bytes(doc.get("committed_bytes", 0)),
                    format_bytes(doc.get("free_cached_bytes", 0)), format_bytes(doc.get("returned_bytes", 0)),
                    format_bytes(doc.get("quarantine_bytes", 0)), format_bytes(doc.get("thread_cache_bytes", 0)),
                    format_bytes(doc.get("middle_layer_bytes", 0)), num(doc.get("lock_contention", 0)),
                    num(doc.get("sampled_allocations", 0))))
    lines.append("")
    parts = doc.get("partitions", {})
    prev_parts = (prev or {}).get("partitions", {})
    rows = []
    for name, c in sorted(parts.items(), key=lambda kv: (kv[0] != "default", -kv[1].get("live_bytes", 0))):
        so = c.get("slab_objects", 0)
        rows.append([name, num(c.get("live_objects", 0)), format_bytes(c.get("live_bytes", 0)),
                     format_bytes(c.get("mapped_bytes", 0)), format_bytes(c.get("committed_bytes", 0)),
                     format_bytes(c.get("free_cached_bytes", 0)), num(c.get("slabs", 0)),
                     pct(so - c.get("slab_free_objects", 0), so),
                     format_bytes(c.get("thread_cache_bytes", 0)), format_bytes(c.get("middle_layer_bytes", 0)),
                     rate(c, prev_parts.get(name) if prev else None, "allocations", dt)])
    lines.append("PARTITIONS (%d)" % len(parts))
    lines += table(["partition", "live objs", "live bytes", "mapped", "committed", "free cached",
                    "slabs", "slab used", "tcache", "middle", "allocs/s"], rows)
    lines.append("")
    classes = doc.get("size_classes", [])
    prev_classes = {c.get("size"): c for c in (prev or {}).get("size_classes", [])}
    used = [c for c in classes if c.get("slabs", 0) or c.get("live_objects", 0)
            or c.get("thread_cache_objects", 0) or c.get("middle_layer_objects", 0)]
    used.sort(key=lambda c: -(c.get("live_objects", 0) * c.get("size", 0)))
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
    lines.append("SIZE CLASSES (default partition: %d of %d in use, by live bytes%s)"
                 % (len(used), len(classes), "" if len(shown) == len(used) else "; top %d" % len(shown)))
    lines += table(["size", "live objs", "live bytes", "slabs", "slab objs", "slab used", "live/slab",
                    "tcache objs", "middle objs", "allocs", "allocs/s"], rows, ["r"] * 11)
    return lines


def cmd_top(args):
    if args.interval <= 0:
        raise CliError("--interval must be > 0")
    if args.iterations is not None and args.iterations < 1:
        raise CliError("--iterations must be >= 1")
    try:
        view = _live.attach(args.pid)
    except NitroHeapError as e:
        raise CliError(str(e))
    clear = not args.no_clear
    max_classes = args.classes
    if max_classes is None and sys.stdout.isatty():
        max_classes = max(5, shutil.get_terminal_size((120, 40)).lines - 18)
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
            lines = render_top(args.pid, doc, header, prev, i, args.iterations, max_classes)
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

def report_lines(rec, top=10, by="bytes", group="function"):
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
    lines.append("TOP %d ALLOCATION SITES (by %s, grouped by %s)" % (len(sites), by, group))
    rows = []
    for i, site in enumerate(sites, 1):
        rows.append([str(i), format_bytes(site.bytes), "%.1f%%" % (100 * site.share), num(site.count),
                     format_bytes(site.live_bytes), format_bytes(site.estimated_bytes),
                     "%s (%s)" % (site.function, site.object or "?") if site.named else site.function])
    lines += table(["#", "bytes", "share", "count", "live bytes", "est. bytes", "function (object)"], rows,
                   ["r", "r", "r", "r", "r", "r", "l"])
    if not sites:
        lines.append("  (no sampled events)")
    for i, site in enumerate(sites[:min(5, len(sites))], 1):
        lines.append("  #%d stack: %s" % (i, " <- ".join(site.stack[:6]) or "(none)"))
    lines.append("")
    lines.append(rec.size_histogram().format())
    lines.append("")
    lines.append(rec.lifetime_histogram().format())
    return lines


def write_html(rec, out_path, top=10, by="bytes", group="function", mode=0o600):
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
    t.set_defaults(func=cmd_top)

    r = sub.add_parser("report", help="summary of a flight recording, optionally as HTML with charts")
    r.add_argument("file", help="a FlightRecording file (NITROHEAP_OPTIONS=flight_recorder=PATH)")
    r.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page with charts")
    r.add_argument("--mode", type=file_mode, default=0o600, metavar="OCTAL",
                   help="permission bits of the HTML file (0600); it is written to a new file and "
                        "renamed into place, never through a link at the path")
    r.add_argument("--top", type=int, default=10, metavar="N", help="allocation sites to list (10)")
    r.add_argument("--by", default="bytes",
                   choices=["bytes", "count", "live_bytes", "live_count", "estimated_bytes", "estimated_count"],
                   help="rank sites by (bytes)")
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
