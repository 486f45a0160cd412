"""Renderers and charts. Reports read plans and tables; they never solve."""
