"""moto's S3 server in a process of its own, with a fast way to load benchmark data.

The benchmark must not share a GIL with the server it measures, so the server runs
here, in a child process. Loading 40,000 objects through PUT requests would take
minutes of moto's time per repetition; the ``seed`` command writes them straight into
this process's moto store instead. Everything measured still goes over HTTP.

Protocol on stdin/stdout, one JSON object a line: ``{"op": "seed", "bucket": ...,
"objects": [[key, text], ...]}`` answers ``{"ok": n}``.
"""

from __future__ import annotations

import json
import logging
import sys

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    print(json.dumps({"ready": True}), flush=True)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "seed":
            for key, text in command["objects"]:
                backend.put_object(command["bucket"], key, text.encode(), disable_notification=True)
            print(json.dumps({"ok": len(command["objects"])}), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
