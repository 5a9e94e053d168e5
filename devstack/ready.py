"""The dev stack's last process: create the bucket, wait for the api, print the URL once.

It then waits to be stopped, because honcho stops the whole stack when any process ends.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import BotoCoreError, ClientError

_ALREADY_THERE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
TIMEOUT_SECONDS = float(os.environ.get("DEVSTACK_READY_TIMEOUT", "120"))


def _wait(what: str, probe: object, deadline: float) -> None:
    assert callable(probe)
    last = ""
    while time.monotonic() < deadline:
        try:
            probe()
            return
        except (OSError, BotoCoreError, ClientError, urllib.error.URLError) as err:
            last = str(err)
            time.sleep(0.2)
    sys.exit(f"devstack: {what} did not come up in {TIMEOUT_SECONDS:.0f} s ({last})")


def main() -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name=os.environ["S3_REGION"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["S3_SECRET_ACCESS_KEY"],
    )
    bucket = os.environ["PHFS_BUCKET"]

    def create_bucket() -> None:
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as err:
            if err.response["Error"]["Code"] not in {
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            }:
                raise

    _wait("the S3 server", create_bucket, deadline)
    url = f"http://{os.environ['API_HOST']}:{os.environ['API_PORT']}"

    def api_ready() -> None:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            if response.status != 200:
                raise OSError(f"/readyz answered {response.status}")

    _wait("the api", api_ready, deadline)
    print(f"Job artifacts is ready: {url}  (Ctrl-C stops everything)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
