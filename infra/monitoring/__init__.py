"""Monitoring of the platform: kube-prometheus-stack, scraping, tested rules, dashboards as code.

``Monitoring`` / ``MonitoringArgs`` (component.py) provision it; ``MonitoringSettings`` and
``LatencySlos`` (settings.py) are the per-stack decisions; the rule files live in ``rules/``
with their promtool unit tests in ``rules/tests/``; runbooks in ``RUNBOOKS.md``.
"""

from infra.monitoring.component import Monitoring, MonitoringArgs
from infra.monitoring.slos import LatencySlos, MonitoringSettingsError
from platform_spec.settings import MonitoringSettings

__all__ = ["LatencySlos", "Monitoring", "MonitoringArgs", "MonitoringSettings", "MonitoringSettingsError"]
