from __future__ import annotations

import pytest
from daemon_support import Capture


@pytest.fixture(name="capture")
def _capture():
    c = Capture().start()
    yield c
    c.close()
