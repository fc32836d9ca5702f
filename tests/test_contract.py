"""The published contract (issue 16 item 11): schemathesis, run against a real service's
``/openapi.json`` with its checks, finds no failure. Bounded: a few minutes at most."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_helpers import KEY, ServerProcess

ST = Path(sys.executable).with_name("st")

# Schema-valid is not valid media: random bytes for `video` are refused with 400, a path in
# the JSON form with 403 (outside the input folders), a well-formed webhook URL may still
# point at a private address (400 WEBHOOK_NOT_ALLOWED). Every other operation must accept
# any schema-valid request. An Idempotency-Key seen before answers 200 (the same request) or
# 409 (another request).
CONFIG = """
[[operations]]
include-path = "/lipsync"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["200", "202", "400", "403", "409", "413", "429"]

[[operations]]
include-path = "/faces"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["202", "400", "403", "413", "429"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("srv"), max_upload_mb=1, max_queue=4).start()
    yield srv
    srv.stop()


@pytest.mark.skipif(not ST.exists() and not shutil.which("st"), reason="schemathesis is in the dev extra")
def test_schemathesis_finds_no_failure(server: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [str(ST if ST.exists() else shutil.which("st")), "--config-file", str(config), "run",
           f"{server.base}/openapi.json", "-H", f"Authorization: Bearer {KEY}", "--checks", "all",
           "--max-examples", "100", "--seed", "16", "--generation-database", "none", "--no-color",
           "--request-timeout", "30", "--max-failures", "20"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    tail = run.stdout[-12000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    summary = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert summary and summary[1] == summary[2], tail
    print(summary[0])


def test_the_document_describes_what_the_service_does(server: ServerProcess) -> None:
    spec = server.client.get("/openapi.json").json()
    lipsync = spec["paths"]["/lipsync"]["post"]
    assert set(lipsync["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    form = lipsync["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["video", "audio"] and form["properties"]["video"]["format"] == "binary"
    assert {"202", "400", "401", "403", "413", "415", "422", "429", "503"} <= set(lipsync["responses"])
    error = lipsync["responses"]["429"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorResponse"}
    assert set(spec["paths"]["/jobs/{job_id}/result"]["get"]["responses"]) >= {"200", "401", "404", "409", "410"}
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    (status,) = [p for p in spec["paths"]["/jobs"]["get"]["parameters"] if p["name"] == "status"]
    assert status["schema"]["enum"] == ["queued", "running", "succeeded", "failed", "canceled"]
    r = server.client.get("/jobs", params={"status": "bogus"})  # the enum is still checked by the code
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PARAMETER"
    r = server.client.put("/jobs/abc")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET" and r.json()["error"]["code"]
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
