"""No request line can end the server: bad encodings, nesting and sizes each get an error event, and
every event reaches the client even when its text is not UTF-8-clean."""
import io
import json
import os
import random
import subprocess
import sys
import threading

import pytest

from terramind_backend.protocol.messages import MAX_DEPTH, ProtocolError, decode_request, encode_event
from terramind_backend.protocol.safe_io import request_lines
from terramind_backend.protocol.server import Server
from tests.backend.test_protocol_process import SERVE
from tests.backend.test_protocol_server import Events, Pipe, ScriptedEngine
from tests.conftest import FAKE_HUB, sample

HOSTILE_LINES = [
    b"\xff\xfe{not utf-8}",
    b'{"op": "hello", "id": "\xc3\x28"}',
    b"[" * 200_000 + b"]" * 200_000,
    b'{"op": "run", "id": "deep", "spec": ' + b'{"a": ' * 50 + b"1" + b"}" * 50 + b"}",
    b'{"op": "run", "id": "nan", "spec": NaN}',
    b"\x00\x01\x02",
    b'"just a string"',
    b"1e999999",
]


def test_request_lines_cap_length_and_decode_each_line_alone():
    stream = io.BytesIO(b'{"a": 1}\n' + b"x" * 5000 + b"\n\xff\n" + '{"é": 2}\n'.encode())
    items = list(request_lines(stream, limit=1024))
    assert items[0] == '{"a": 1}\n' and items[3] == '{"é": 2}\n'
    assert isinstance(items[1], ProtocolError) and "longer than" in str(items[1])
    assert isinstance(items[2], ProtocolError) and "not valid UTF-8" in str(items[2])


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_nesting_is_a_protocol_error(depth):
    line = '{"op": "validate", "id": "v", "spec": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode_request(line)


def test_events_that_are_not_utf8_clean_are_escaped_not_dropped():
    bad_name = os.fsdecode(b"/data/caf\xe9.tif")  # a Latin-1 file name on a UTF-8 system: a lone surrogate
    line = encode_event("log", "j", level="warning", message=f"cannot read {bad_name}")
    line.encode("utf-8")  # sendable as is
    assert json.loads(line)["message"] == f"cannot read {bad_name}"
    circular = []
    circular.append(circular)
    event = json.loads(encode_event("result", "j", outputs=circular, value=float("inf"), obj=object()))
    assert event["value"] is None and event["obj"].startswith("<object")


def _server(engine=None):
    pipe, events = Pipe(), Events()
    srv = Server(pipe, events, engine=engine or ScriptedEngine())
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("rc", srv.serve()), daemon=True)
    thread.start()
    return pipe, events, thread, done


class BytesPipe(Pipe):
    def __iter__(self):
        while True:
            line = self._lines.get()
            if line is None:
                return
            yield line if isinstance(line, bytes) else (line + "\n").encode()


def test_fuzzed_lines_while_a_job_runs_leave_it_and_the_queue_intact():
    pipe, events = BytesPipe(), Events()
    srv = Server(pipe, events, engine=ScriptedEngine())
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    try:
        pipe.send({"op": "run", "id": "long", "spec": {"tiles": 10, "sleep": 0.05}})
        pipe.send({"op": "run", "id": "queued", "spec": {"tiles": 1}})
        events.until(lambda e: e["event"] == "progress")
        rng = random.Random(7)
        lines = HOSTILE_LINES + [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
                                 for _ in range(40)]
        for raw in lines:
            pipe._lines.put(raw.replace(b"\n", b" ") + b"\n")
        pipe.send({"op": "run", "id": "long", "spec": {"tiles": 1}})  # duplicate of the running job's id
        finals = {}
        seen = []
        while len(finals) < 2:
            event, part = events.until(lambda e: e["event"] in ("result", "error"), timeout=20)
            seen += part
            if event["job"] in ("long", "queued"):
                finals[event["job"]] = event
        assert finals["long"]["event"] == "result" and finals["queued"]["event"] == "result"
        errors = [e for e in seen if e["event"] == "error"]
        assert len(errors) >= len(lines)
        assert all(e["kind"] == "protocol" for e in errors)
        duplicate = [e for e in errors if "already queued or running" in e["message"]]
        assert duplicate and duplicate[0]["job"] is None and duplicate[0]["field"] == "id"
    finally:
        pipe.close()
        thread.join(5)


def _run_process(stdin: bytes, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env, OMP_NUM_THREADS="1")
    return subprocess.run(SERVE, input=stdin, capture_output=True, timeout=120, env=env)


def test_real_server_answers_every_hostile_line_and_exits_cleanly():
    huge = b'{"op": "hello", "id": "' + b"h" * (33 * 2**20) + b'"}'
    stdin = b"\n".join(HOSTILE_LINES + [huge, b'{"op": "cancel", "id": "after", "job": "none"}', b'{"op": "shutdown", "id": "s"}'])
    done = _run_process(stdin + b"\n")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    events = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == len(HOSTILE_LINES) + 1 and all(e["kind"] == "protocol" for e in errors)
    assert any("longer than" in e["message"] for e in errors)
    assert any("not valid UTF-8" in e["message"] for e in errors)
    assert any("nested too deeply" in e["message"] for e in errors)
    assert {"event": "result", "job": "s", "shutdown": True} in events
    assert any(e["event"] == "log" and e["job"] == "none" for e in events)  # still reading requests


def test_real_job_survives_hostile_lines_and_sends_its_result(tmp_path):
    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny", "device": "cpu",
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
            "outputs": {"embeddings": str(tmp_path / "emb.tif")}}
    run = json.dumps({"op": "run", "id": "j", "spec": spec}).encode()
    stdin = b"\n".join([run] + HOSTILE_LINES) + b"\n"   # end of input only after the job's final event
    env = dict(os.environ, HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(SERVE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(env, OMP_NUM_THREADS="1"))
    try:
        proc.stdin.write(stdin)
        proc.stdin.flush()
        final = None
        for line in proc.stdout:
            event = json.loads(line)
            if event["job"] == "j" and event["event"] in ("result", "error"):
                final = event
                break
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert final is not None and final["event"] == "result", final
    assert sorted(os.listdir(tmp_path)) == ["emb.qml", "emb.tif", "emb_pca.qml", "emb_pca.tif"]  # + the PCA composite (#18)
