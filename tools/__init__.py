"""Developer tooling around the Pulumi program: the offline plan and the mocked-program runner.

Never imported by the program itself (``infra/`` holds only what ``pulumi up`` runs).
"""
