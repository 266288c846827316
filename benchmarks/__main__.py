"""python -m benchmarks [--quick] [--only NAMES] [--duration S] [--rounds N] [--workers N]
[--out DIR] [--keep] [--report-only RESULTS_JSON]: see benchmarks/README.md."""
import argparse
import json
import logging
import shlex
import signal
import sys
import time
from pathlib import Path

from benchmarks import load, machine, plan as plans, report
from benchmarks.scenarios import SCENARIOS
from harness.stack import Stack

RESULTS = Path(__file__).with_name("results")
log = logging.getLogger("benchmarks")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a check")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--duration", type=int, help="seconds per load window")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (medians are taken)")
    parser.add_argument("--workers", type=int, help="OG_WORKERS for gunicorn")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results for a full run, "
                        "benchmarks/results/raw/<quick|partial> (git-ignored) otherwise")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    parser.add_argument("--report-only", type=Path, metavar="RESULTS_JSON",
                        help="measure nothing: redo summaries, plots and report.md of a run")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(args.only) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.out is None:
        full = not args.quick and args.only == list(SCENARIOS)
        args.out = RESULTS if full else RESULTS / "raw" / ("quick" if args.quick else "partial")
    return args


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    modules = report.modules()
    if args.report_only:
        results = json.loads(args.report_only.read_text())
        for name, module in modules.items():
            if name in results and hasattr(module, "summarize"):
                results[name]["summary"] = module.summarize(results[name])
        write(results, args.report_only.parent)
        return 0
    # Clean up on SIGTERM as on Ctrl-C; SIGINT too when started with it ignored (`cmd &`).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    plan = plans.build(args.quick, args.duration, args.rounds)
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])
    results = {"command": command.strip(), "plan": plan.__dict__, "machine": machine.describe(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    log.info("benchmarks: %s -> %s", ", ".join(args.only), args.out)
    stack, started = Stack(workers=args.workers, keep=args.keep), time.monotonic()
    try:
        for name in args.only:
            log.info("== %s", name)
            began = time.monotonic()
            try:
                results[name] = modules[name].run(stack, plan)
                results[name]["seconds"] = round(time.monotonic() - began, 1)
            except Exception as error:  # the other scenarios and the report still run
                log.exception("%s failed", name)
                results.setdefault("failed", {})[name] = f"{type(error).__name__}: {error}"
    finally:
        load.kill_all()
        stack.close()
        if args.keep:
            log.info("kept %s", stack.dir)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_after"] = machine.load_average()
    write(results, args.out)
    return 1 if results.get("failed") else 0


def write(results, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(report.render(results, out))
    log.info("wrote %s (report.md, results.json, plots)", out)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interruption:
        log.error("interrupted (%s); everything started here has been stopped", interruption)
        sys.exit(130)
