"""The ground floor: plain data every other floor builds on, with no Pulumi and nothing above it.

``settings`` is the one parser and validator of a stack's config; ``gpus`` the GPU SKUs and the EC2
instance types that carry them; ``versions`` every pinned version; ``digests`` the content digests
every source and artifact is checked against. The engine-build Job imports ``gpus``, ``versions``
and ``digests`` from here too (see ``engines.runners.code_bundle``), so keep this ``__init__`` empty
of imports: the Job's image has neither pydantic nor PyYAML.
"""
