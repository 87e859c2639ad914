"""One fixture per stack: the whole program run once under mocks with that stack's config."""

import pytest

from platform_spec.settings import load_stack_settings
from tests.pulumi_harness import program_fixture

dev_stack = program_fixture("dev")
prod_stack = program_fixture("prod")


@pytest.fixture(params=["dev", "prod"])
def stack_run(request):
    """Both stacks, for assertions that must hold everywhere."""
    return request.getfixturevalue(f"{request.param}_stack")


@pytest.fixture
def stack_settings(stack_run):
    return load_stack_settings(stack_run.stack)
