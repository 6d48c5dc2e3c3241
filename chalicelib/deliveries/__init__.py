"""Deliveries: creating them (validation, link preparation), sending them,
and rendering a recipient's message (for SES and for the mirror page)."""
