"""The role groups and the model permissions each one holds.

Migration 0003 creates the groups from this table; a later migration that adds models
(and so permissions) calls ``sync_role_groups`` again.
"""

CHILD_MODELS = ("name", "identifier", "address", "contact", "link")
PATIENT_MODELS = ("patient", *CHILD_MODELS)
HISTORY_MODELS = tuple(f"historical{m}" for m in PATIENT_MODELS)


def _perms(actions: tuple[str, ...], models: tuple[str, ...]) -> set[str]:
    return {f"patients.{a}_{m}" for a in actions for m in models}


# "delete" is the soft delete; purging (a real delete) is for superusers only.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    "clerk": _perms(("view", "add", "change", "delete"), PATIENT_MODELS)
    | {"patients.view_organization", *_perms(("view",), HISTORY_MODELS)},
    "steward": _perms(("view", "add", "change", "delete"), PATIENT_MODELS)
    | {"patients.view_organization", "patients.restore_patient", *_perms(("view",), HISTORY_MODELS)},
    "integrator": _perms(("view", "add", "change"), PATIENT_MODELS) | {"patients.view_organization"},
    "auditor": _perms(("view",), PATIENT_MODELS + HISTORY_MODELS) | {"patients.view_organization"},
}


def sync_role_groups(group_model, permission_model) -> None:
    """Create the groups and give each exactly its permissions (missing ones skipped)."""
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        perms = []
        for code in sorted(codes):
            app_label, codename = code.split(".")
            perm = permission_model.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm:
                perms.append(perm)
        group.permissions.add(*perms)
