"""The steward pages. Each module is one page and its actions; permissions are declared
with decorators on each view (grep ``permission_required``)."""
