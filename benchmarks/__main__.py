"""python -m benchmarks [--quick] [--only throughput,growth,drain,memory,staleness,range,cluster,proxy,page,
                               operations]
                       [--duration S] [--rounds N] [--workers N] [--out DIR]

Starts private Redis and MariaDB, the API on each backend and the ingest worker, drives
them with wrk and client/client.py (loopback only, every load bounded), and writes
report.md, PNG plots and results.json. See benchmarks/README.md.
"""
import argparse
import importlib
import json
import logging
import shlex
import signal
import sys
import time
from pathlib import Path

from benchmarks import load, machine, plan as plans

SCENARIOS = ("throughput", "growth", "drain", "memory", "staleness", "range", "cluster", "proxy",
             "page", "operations")
RESULTS = Path(__file__).with_name("results")

log = logging.getLogger("benchmarks")


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the API on null, sqlite and redis, and the ingest worker.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one round: a 2-3 minute check that everything works")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios (default: all of {','.join(SCENARIOS)})")
    parser.add_argument("--duration", type=int, help="seconds per load window")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (medians are taken)")
    parser.add_argument("--workers", type=int,
                        help="OG_WORKERS for gunicorn (default: gunicorn.conf.py's default)")
    parser.add_argument("--out", type=Path,
                        help="output directory (default: benchmarks/results for a full run, "
                             "benchmarks/results/raw/<quick|partial> otherwise)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    parser.add_argument("--report-only", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: redo the summaries, plots and report.md of an "
                             "earlier run, next to its results.json")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.out is None:
        full = not args.quick and args.only == list(SCENARIOS)
        args.out = RESULTS if full else RESULTS / "raw" / ("quick" if args.quick else "partial")
    return args


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.report_only:
        return rewrite(args.report_only)
    # Clean up on SIGTERM as on Ctrl-C; SIGINT too when started with it ignored (`cmd &`).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    plan = plans.build(args.quick, args.duration, args.rounds)
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])
    results = {"command": command.strip(), "plan": plan.__dict__, "machine": machine.describe(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    log.info("benchmarks: %s -> %s", ", ".join(args.only), args.out)

    from harness.stack import Stack  # imports harness.servers: only once we run

    stack = Stack(workers=args.workers, keep=args.keep)
    started = time.monotonic()
    try:
        for name in args.only:
            log.info("== %s", name)
            scenario = importlib.import_module(f"benchmarks.scenarios.{name}")
            began = time.monotonic()
            try:
                results[name] = scenario.run(stack, plan)
            except Exception as error:  # the other scenarios and the report still run
                log.exception("%s failed", name)
                results.setdefault("failed", {})[name] = f"{type(error).__name__}: {error}"
                continue
            results[name]["seconds"] = round(time.monotonic() - began, 1)
    finally:
        load.kill_all()
        stack.close()
        if args.keep:
            log.info("kept %s", stack.dir)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_after"] = machine.load_average()
    write(results, args.out)
    return 1 if results.get("failed") else 0


def rewrite(path):
    """Summaries are recomputed from the windows, so a fix to them applies to old runs."""
    results = json.loads(path.read_text())
    for name in ("throughput", "growth"):
        if name in results:
            scenario = importlib.import_module(f"benchmarks.scenarios.{name}")
            windows = results[name]["windows"]
            results[name]["summary"] = (scenario.summarize(windows, results[name]["client"])
                                        if name == "throughput" else scenario.summarize(windows))
    if "cluster" in results and "windows" in results["cluster"]:
        from benchmarks.scenarios import cluster

        results["cluster"]["summary"] = cluster.summarize(results["cluster"]["windows"],
                                                          results["cluster"]["drains"])
    if "proxy" in results and "windows" in results["proxy"]:
        from benchmarks.scenarios import proxy

        results["proxy"]["summary"] = proxy.summarize(results["proxy"]["windows"])
    if "page" in results and "windows" in results["page"]:
        from benchmarks.scenarios import page

        results["page"]["summary"] = page.summarize(results["page"]["windows"])
    if "operations" in results and "filter" in results["operations"]:
        from benchmarks.scenarios import operations

        o = results["operations"]
        o["summary"] = operations.summarize(o["filter"], o["rebuilds"], o["drains"])
    write(results, path.parent)
    return 0


def write(results, out):
    from benchmarks import plots, report

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    figures = plots.draw(results, out)
    (out / "report.md").write_text(report.render(results, figures))
    log.info("wrote %s (report.md, results.json, %d plots)", out, len(figures))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interruption:
        log.error("interrupted (%s); everything started here has been stopped", interruption)
        sys.exit(130)
