"""Clients of tests/replication/check.

    clients.py BASE TOKEN ACKED            order until the server goes away
    clients.py BASE TOKEN ACKED --verify   check the restored server

Ordering: freezes the test clock (orders stay queued), then four threads
submit orders until the server stops answering (60 s at most), appending the
id of each acknowledged one (HTTP 201) to ACKED. Verifying: every id in
ACKED is served, and the ticker finishes each within 60 s.
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request

base, token, acked_path = sys.argv[1], sys.argv[2], sys.argv[3]
OWNER = {"contacts": {"owner": {"name": "Ada Lovelace", "email": "ada@example.net"}}}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def order(n, lock, out, deadline):
    i = 0
    while time.time() < deadline:
        body = {"domain": f"replica-{n}-{i}.com", "operation": "create",
                "params": OWNER, "submit": True}
        try:
            status, answer = call("POST", "/api/v1/requests", body)
        except (OSError, urllib.error.URLError):
            return  # the server was killed
        if status != 201:
            sys.exit(f"order refused: {status} {answer}")
        with lock:
            out.write(f"{answer['id']}\n")
            out.flush()
        i += 1


def ordering():
    status, answer = call("POST", "/api/v1/clock", {"freeze": True})
    assert status == 200, answer
    lock = threading.Lock()
    deadline = time.time() + 60
    with open(acked_path, "w") as out:
        threads = [threading.Thread(target=order, args=(n, lock, out, deadline))
                   for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def verifying():
    ids = [int(line) for line in open(acked_path)]
    missing = [i for i in ids if call("GET", f"/api/v1/requests/{i}")[0] != 200]
    if missing:
        sys.exit(f"{len(missing)} of {len(ids)} acknowledged orders lost, such as {missing[:5]}")
    deadline = time.time() + 60
    pending = ids
    while pending and time.time() < deadline:
        pending = [i for i in pending
                   if call("GET", f"/api/v1/requests/{i}")[1]["state"] != "finished"]
        if pending:
            time.sleep(0.2)
    if pending:
        sys.exit(f"{len(pending)} orders not finished by the ticker, such as {pending[:5]}")
    print(f"restored: all {len(ids)} acknowledged orders, each finished by the ticker")


if __name__ == "__main__":
    verifying() if "--verify" in sys.argv else ordering()
