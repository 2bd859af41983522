from tests.patients.api.conftest import (  # noqa: F401 (fixtures)
    as_auditor,
    as_clerk,
    as_integrator,
    as_outsider,
    as_steward,
    jones,
)
