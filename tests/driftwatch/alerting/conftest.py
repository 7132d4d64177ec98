"""Fixtures the alerting tests share: local fake PagerDuty and Slack services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.notify_servers import FakeService


@pytest.fixture
def pd() -> Iterator[FakeService]:
    service = FakeService("pagerduty")
    yield service
    service.close()


@pytest.fixture
def slack() -> Iterator[FakeService]:
    service = FakeService("slack")
    yield service
    service.close()
