"""The role groups and the model permissions each one holds.

Migration 0003 creates the groups from this table, and ``sync_role_groups`` runs again
after every ``migrate`` (patients/apps.py): a role or permission added here reaches
existing databases on their next migrate, no data migration needed. Who may do what,
per interface, is written down once in tests/security/matrix.py (README "Roles and
permissions"); its test walks every role x endpoint x method.
"""

CHILD_MODELS = ("name", "identifier", "address", "contact", "link")
PATIENT_MODELS = ("patient", *CHILD_MODELS)
HISTORY_MODELS = tuple(f"historical{m}" for m in PATIENT_MODELS)


def _perms(actions: tuple[str, ...], models: tuple[str, ...]) -> set[str]:
    return {f"patients.{a}_{m}" for a in actions for m in models}


# The steward pages (matching/views): the queue, merges and their history. Codes of
# another app are plain strings here, so patients still imports nothing of matching.
STEWARD_MATCHING_PERMISSIONS = {
    "matching.review_candidate",
    "matching.merge_patients",
    "matching.view_matchcandidate",
    "matching.view_merge",
}

# What the MPI administrator holds besides every other role's permissions: API tokens
# (issue, revoke), organizations, and reading users, groups and the match model versions.
# Not user administration: Django's user admin lets whoever may change a user make them
# a superuser, so managing accounts stays with superusers (as does purge).
ADMIN_PERMISSIONS = {
    *(f"accounts.{a}_apitoken" for a in ("view", "add", "change", "delete")),
    "accounts.view_idempotencyrecord",
    "patients.add_organization",
    "patients.change_organization",
    "auth.view_user",  # the token form's user picker (autocomplete) needs it
    "auth.view_group",
    "matching.view_matchmodelversion",
}

# "delete" is the soft delete; purging (a real delete) is for superusers only.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    "clerk": _perms(("view", "add", "change", "delete"), PATIENT_MODELS)
    | {"patients.view_organization", *_perms(("view",), HISTORY_MODELS)},
    "steward": _perms(("view", "add", "change", "delete"), PATIENT_MODELS)
    | {"patients.view_organization", "patients.restore_patient", *_perms(("view",), HISTORY_MODELS)}
    | STEWARD_MATCHING_PERMISSIONS,
    "integrator": _perms(("view", "add", "change"), PATIENT_MODELS) | {"patients.view_organization"},
    "auditor": _perms(("view",), PATIENT_MODELS + HISTORY_MODELS)
    | {"patients.view_organization", "audit.view_auditevent"},
}
ROLE_PERMISSIONS["admin"] = set().union(*ROLE_PERMISSIONS.values()) | ADMIN_PERMISSIONS


def sync_role_groups(group_model, permission_model) -> None:
    """Create the groups and add their permissions (ones not created yet are skipped).

    Runs from migration 0003 and after every migrate/flush (patients/apps.py), so the
    groups survive test-database flushes and pick up permissions of later models.
    """
    by_code = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.add(*(by_code[c] for c in codes if c in by_code))
