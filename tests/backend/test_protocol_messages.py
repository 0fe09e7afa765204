"""Protocol encoding and request checks (pure; no engine, no subprocess)."""
import json

import pytest

from terramind_backend.protocol.messages import (PROTOCOL_VERSION, ProtocolError, decode_request, encode_event,
                                                 error_event)


def test_version_is_one():
    assert PROTOCOL_VERSION == 1


@pytest.mark.parametrize("line, message, job, field", [
    ("not json", "not valid JSON", None, None),
    ("[1, 2]", "must be a JSON object", None, None),
    ('{"op": "hello"}', "non-empty string 'id'", None, "id"),
    ('{"op": "hello", "id": 3}', "non-empty string 'id'", None, "id"),
    ('{"op": "fly", "id": "a"}', "Unknown op 'fly'", "a", "op"),
    ('{"id": "a"}', "Unknown op None", "a", "op"),
    ('{"op": "run", "id": "a"}', "needs 'spec' (object)", "a", "spec"),
    ('{"op": "run", "id": "a", "spec": "job.json"}', "needs 'spec' (object)", "a", "spec"),
    ('{"op": "validate", "id": "a", "spec": []}', "needs 'spec' (object)", "a", "spec"),
    ('{"op": "cancel", "id": "a"}', "needs 'job' (string)", "a", "job"),
])
def test_bad_requests_are_explained(line, message, job, field):
    with pytest.raises(ProtocolError) as info:
        decode_request(line)
    assert message in str(info.value)
    assert info.value.job == job
    assert info.value.field == field


@pytest.mark.parametrize("request_", [
    {"op": "hello", "id": "h"},
    {"op": "models", "id": "m"},
    {"op": "shutdown", "id": "s"},
    {"op": "cancel", "id": "c", "job": "j1"},
    {"op": "run", "id": "j1", "spec": {"version": 1}},
    {"op": "validate", "id": "v", "spec": {"version": 1}, "extra": "ignored"},
])
def test_good_requests_pass(request_):
    assert decode_request(json.dumps(request_)) == request_


def test_event_is_one_line_with_job_and_no_nan():
    line = encode_event("progress", "j1", stage="tiles", done=1, total=3, fraction=float("nan"),
                        eta_s=float("inf"), message="tile 1/3\nnext")
    assert line.endswith("\n") and line.count("\n") == 1
    event = json.loads(line)
    assert event == {"event": "progress", "job": "j1", "stage": "tiles", "done": 1, "total": 3,
                     "fraction": None, "eta_s": None, "message": "tile 1/3\nnext"}


def test_error_event_fields():
    event = json.loads(error_event("j", "validation", "bad band", "inputs.S2L2A.bands"))
    assert event == {"event": "error", "job": "j", "kind": "validation", "message": "bad band",
                     "field": "inputs.S2L2A.bands"}
    with pytest.raises(ValueError):
        error_event("j", "oops", "x")
    with pytest.raises(ValueError):
        encode_event("bogus", "j")
