"""What a clinical researcher opens: per-case overview PNGs, the cohort summary and HTML report."""

from mednet.report.html import write_report
from mednet.report.overview import draw_panel, radiological_slice, write_overview

__all__ = ["draw_panel", "radiological_slice", "write_overview", "write_report"]
