"""The benchmark report: result records → one self-contained HTML page and a Markdown twin.

Answers, at a glance, the morning's three questions — is it faster than yesterday, than
the peers, and how does it scale — and shows CPU against GPU, quality over a test set
(histograms per method/source) and error against iteration. It reads only the fields of
:class:`autophase.results.Result` records, by name.

    from autophase.report import build_report
    build_report(["benchmarks/results"], "reports/2026-11-25")

or ``autophase report benchmarks/results -o reports/2026-11-25``. Modules:
:mod:`.records` (loading), :mod:`.compare` (Δ vs the previous run), :mod:`.sections`
(tables and figures drawn from metrics, series and distributions), :mod:`.figures`
(matplotlib), :mod:`.document` (HTML/Markdown), :mod:`.build` (putting it together),
:mod:`.browser` (checking the page in headless Chromium).
"""
from .build import ReportFiles, build_report, find_previous
from .records import Loaded, Record, load_records

__all__ = ["build_report", "find_previous", "ReportFiles", "Record", "Loaded", "load_records"]
