"""What the Python SDK suites (sdk_test.py, containers_test.py) share: waiting for a resource to
be gone."""

import time

from scaleway import ScalewayException


def gone(fetch):
    """Waits until fetch() raises the SDK's 404; returns the exception."""
    for _ in range(60):
        try:
            fetch()
        except ScalewayException as error:
            if error.status_code == 404:
                return error
            raise
        time.sleep(0.5)
    raise AssertionError("still there after 30 s")
