"""The benchmark report: JSON records → one self-contained HTML page and a Markdown twin.

Answers, at a glance, the morning's three questions — is it faster than yesterday,
than the peers, and how does it scale — and shows CPU against GPU, quality over a test
set (χ²/SSIM histograms) and error against iteration.

    from autophase.report import build_report
    build_report(["benchmarks/results"], "reports/2026-11-25")

or ``autophase report benchmarks/results -o reports/2026-11-25``. Modules:
:mod:`.records` (loading), :mod:`.compare` (leaves, better-direction, regressions),
:mod:`.sections` (what to draw for each suite), :mod:`.figures` (matplotlib),
:mod:`.document` (HTML/Markdown), :mod:`.build` (putting it together),
:mod:`.browser` (checking the page in headless Chromium).
"""
from .build import ReportFiles, build_report, find_previous
from .records import Record, load_records

__all__ = ["build_report", "find_previous", "ReportFiles", "Record", "load_records"]
