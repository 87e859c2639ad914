"""Fixtures of the delivery tests: the whole program run once per stack under Pulumi mocks."""

import pytest

from tests.pulumi_harness import program_fixture

dev_stack = program_fixture("dev")
prod_stack = program_fixture("prod")


@pytest.fixture(params=["dev", "prod"])
def stack_run(request):
    """Both stacks, for what must hold everywhere."""
    return request.getfixturevalue(f"{request.param}_stack")
