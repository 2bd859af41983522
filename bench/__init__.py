"""The whole-system benchmark suite (issue 8): ``manage.py bench``, ``make bench``.

A tool over every app, used by none of them, so it lives beside the apps (like
``tests/``) rather than inside one: ``data`` writes the synthetic registry and the
probes, ``server`` runs gunicorn, ``client`` times requests and generates load,
``floors`` replays each request's SQL raw, ``report`` prints the table and the JSON,
``suite`` runs the phases in order. The command itself is a thin wrapper in
``fhir_api`` (the one app allowed to depend on all others, as ``import_patients``).
See docs/bench.md.
"""
