"""A backend that hangs in its job: it speaks protocol 1, streams progress for a `run` forever and ignores
`cancel` and `shutdown` (a window stuck in a long native call, a wedged GPU driver). Only end of input or
a kill stops it. Used to quit QGIS while a job is guaranteed to outlive the quit."""
import json
import os
import sys
import threading
import time


def send(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def stream(job):
    done = 0
    while True:
        done += 1
        send(event="progress", job=job, stage="tiles", done=done, total=10**6, fraction=min(0.5, done / 100),
             eta_s=None, message=f"{done} windows")
        time.sleep(0.05)


for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "hello":
        send(event="hello", job=request["id"], protocol=1, backend="hung", pid=os.getpid(), ops=["hello", "run"],
             device="cpu")
    elif request["op"] == "run":
        threading.Thread(target=stream, args=(request["id"],), daemon=True).start()
os._exit(0)
