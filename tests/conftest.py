import pytest
from django.contrib.auth.models import Group, User


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage (production) needs `collectstatic`; rendering pages in tests does not.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _user_in(role: str | None, username: str, **extra) -> User:
    user = User.objects.create_user(username=username, password="correct-horse-battery", **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def clerk(db) -> User:
    return _user_in("clerk", "clerk", is_staff=True)


@pytest.fixture
def steward(db) -> User:
    return _user_in("steward", "steward", is_staff=True)


@pytest.fixture
def integrator(db) -> User:
    return _user_in("integrator", "integrator")


@pytest.fixture
def auditor(db) -> User:
    return _user_in("auditor", "auditor", is_staff=True)


@pytest.fixture
def outsider(db) -> User:
    return _user_in(None, "outsider")


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", "admin@example.org", "correct-horse-battery")
