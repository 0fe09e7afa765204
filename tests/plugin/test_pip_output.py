"""The installer's reading of pip's output (retry and failure lines in pip's format):
one line per retry, one message when the index cannot be reached, and a real InstallTask step failing that way."""
from __future__ import annotations

import sys

from terramind_qgis.installer import InstallTask
from terramind_qgis.pip_output import NO_NETWORK_MESSAGE, failure_message, no_network, summarise_line

RETRY = ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
         "broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f2b5c1d0>: "
         "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/torch/")
FAILED = ["ERROR: Could not find a version that satisfies the requirement torch (from versions: none)",
          "ERROR: No matching distribution found for torch"]


def test_a_retry_warning_becomes_one_readable_line():
    line = summarise_line(RETRY)
    assert line == ("pip: cannot reach the package index for /simple/torch/ (temporary failure in name resolution); "
                    "4 retries left")
    assert summarise_line(FAILED[0]) == FAILED[0]   # other lines are pip's own words


def test_no_network_is_one_message_saying_what_to_do():
    assert no_network([RETRY] + FAILED) and not no_network(FAILED)
    assert failure_message("Install the backend", 1, "\n".join([RETRY] + FAILED)) == NO_NETWORK_MESSAGE
    assert "PIP_FIND_LINKS" in NO_NETWORK_MESSAGE and "Interpreter" in NO_NETWORK_MESSAGE
    assert failure_message("Install torch", 1, "\n".join(FAILED)) == \
        "Install torch failed (exit code 1); see the log above."


def test_an_install_step_without_network_reports_it_once(qgis_app, tmp_path):
    class Plan:
        python = tmp_path / "missing" / "python"
        venv_dir = tmp_path

    task = InstallTask(Plan())
    shown = []
    task.line.connect(shown.append)
    script = "import sys; print(sys.argv[1]); print(sys.argv[2]); print(sys.argv[3]); sys.exit(1)"
    ok = task._run_steps([("Create venv", [sys.executable, "-c", "pass"]),
                          ("Install torch", [sys.executable, "-c", script, RETRY, *FAILED])], {})
    assert not ok and task.error == NO_NETWORK_MESSAGE
    assert any(line.startswith("pip: cannot reach the package index") for line in shown)
    assert not any(line.startswith("WARNING: Retrying") for line in shown)
