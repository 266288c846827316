"""The writeup quotes only figures the committed benchmark report holds.

discussion.txt and README.md quote benchmark figures; benchmarks/results/report.md (made
by `make bench`) is where they must come from. The rule, for those two files:

- a ratio, a number written with a ratio mark (`0.64x`, `60.32×`), must appear in the
  report as that ratio (`0.64×`);
- a number with a measured unit (`ms`, `µs`/`us`, `bytes`, `events`, `events/s`,
  `2xx/s`, `req/s`, `requests/s`, `queries/s`, `calls`, `calls/s`), both ends of a range
  such as `32,422-55,208 events/s` included, must appear in the report as a number (a
  table cell counts; thousands separators are ignored);
- exempt: a figure written `≈N`, which the text computes from the report's figures and
  shows the arithmetic for. Ratios are never exempt.

A figure from another run (an uncommitted one, or a separate report) may still be named
in words, but not written in these forms.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "benchmarks" / "results" / "report.md"
QUOTING = ("discussion.txt", "README.md")

NUMBER = r"\d[\d,]*(?:\.\d+)?"
RATIO = re.compile(rf"(≈\s*)?(?<![\w.,])({NUMBER})[x×](?!\w)")
UNITS = r"ms|µs|us|bytes|events/s|events|2xx/s|req/s|requests/s|queries/s|calls/s|calls"
WITH_UNIT = re.compile(
    rf"(≈\s*)?(?<![\w.,])({NUMBER})(?:\s*[-–]\s*({NUMBER}))?\s*(?:{UNITS})(?![\w/])")


def _plain(number):
    return number.replace(",", "")


def report_figures(text):
    """(ratios written with ×, every number) of the report, without separators."""
    ratios = {_plain(m) for m in re.findall(rf"({NUMBER})×", text)}
    numbers = {_plain(m) for m in re.findall(NUMBER, text)}
    return ratios, numbers


def quoted_figures(text):
    """[(line number, kind, number as written, derived)] of every figure the rule checks
    (a figure and its unit may be wrapped onto two lines)."""
    found = []
    for kind, pattern in (("ratio", RATIO), ("unit", WITH_UNIT)):
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start(2)) + 1
            for figure in filter(None, match.groups()[1:]):
                found.append((line, kind, figure, match.group(1) is not None))
    return sorted(found)


def unbacked(text, report_text):
    """The figures of `text` the report does not contain: [(line, figure)]."""
    ratios, numbers = report_figures(report_text)
    missing = []
    for line, kind, figure, derived in quoted_figures(text):
        if kind == "ratio" and _plain(figure) not in ratios:
            missing.append((line, figure + "x"))
        elif kind == "unit" and not derived and _plain(figure) not in numbers:
            missing.append((line, figure))
    return missing


@pytest.fixture(scope="module")
def report_text():
    return REPORT.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", QUOTING)
def test_every_quoted_figure_is_in_the_committed_report(name, report_text):
    missing = unbacked((ROOT / name).read_text(encoding="utf-8"), report_text)
    assert not missing, (f"{name} quotes figures benchmarks/results/report.md does not hold "
                         f"(line, figure): {missing}")


@pytest.mark.parametrize("name, at_least", [("discussion.txt", 40), ("README.md", 5)])
def test_the_rule_sees_the_figures(name, at_least):
    """A pattern that stopped matching would pass everything: the files do quote figures."""
    figures = quoted_figures((ROOT / name).read_text(encoding="utf-8"))
    assert len([f for f in figures if not f[3]]) >= at_least


SAMPLE_REPORT = """
| redis | 3,625 | 0.64× | 60.32× | 48.0 | 32,422 |
| cluster | 55,208 | 21.9 | 815.8 | 362 |
"""
"""A report's figures in its own form (the checks above run on the committed one)."""


@pytest.mark.parametrize("made_up", [
    "the request path ran at 0.73x null",
    "whole system 0.69× of null",
    "the drain reached 51,316 events/s",
    "p99 30.1 ms at 64 connections",
    "one worker drains 32,422-53,787 events/s",
    "Redis spends 36.8 µs per call",
    "≈0.83x of null",
])
def test_a_made_up_figure_is_caught(made_up):
    assert unbacked(made_up, SAMPLE_REPORT), made_up


@pytest.mark.parametrize("quoted", [
    "redis 0.64x null, 60.32× sqlite",
    "p99 48.0 ms; 32,422 events/s; 21.9 µs per call; 815.8 queries/s",
    "one worker: 32,422-55,208 events/s",
    "≈2,760 writes/s per core (1,000,000 / 362 µs); ≈89 µs more",
])
def test_report_figures_and_computed_ones_pass(quoted):
    assert not unbacked(quoted, SAMPLE_REPORT)
