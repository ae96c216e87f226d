"""Presentation of a `hwsim.cost.simulation.Simulation`: JSON summary, terminal table, plots, md/html.

Why: the numbers are computed once (cost + memory + compliance); these modules only format them,
so the terminal table, summary.json, report.md and report.html always agree.
"""
from __future__ import annotations

from hwsim.report.summary import summary_dict, to_json
from hwsim.report.table import render_table
from hwsim.report.writers import write_report

__all__ = ["summary_dict", "to_json", "render_table", "write_report"]
