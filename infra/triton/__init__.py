"""Triton Inference Server on EKS: the serving image, the published model repository, one
Deployment per GPU pool, autoscaling on queue time and a post-deploy smoke Job.

Entry point: :class:`infra.triton.component.TritonPlatform` (settings in
:mod:`platform_spec.serving`).
"""
