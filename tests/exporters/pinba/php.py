"""Run the real php-pinba extension (Debian `php-pinba`) and capture what it sends.

Debian's pinba.ini points every `php` run at 127.0.0.1:30002; we pass `-n` (no ini files) and
our own settings, and a port of our own, so nothing else is ever sent anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = r"""<?php
$spec = json_decode(file_get_contents($argv[1]), true);
$client = new PinbaClient([$spec["server"]]);
$setters = ["hostname" => "setHostname", "server_name" => "setServername",
    "script_name" => "setScriptname", "request_count" => "setRequestCount",
    "document_size" => "setDocumentSize", "memory_peak" => "setMemoryPeak",
    "memory_footprint" => "setMemoryFootprint", "rusage" => "setRusage",
    "request_time" => "setRequestTime", "status" => "setStatus", "schema" => "setSchema"];
foreach ($setters as $key => $method) {
    if (array_key_exists($key, $spec)) { $client->$method($spec[$key]); }
}
foreach ($spec["tags"] as $name => $value) { $client->setTag($name, $value); }
foreach ($spec["timers"] as $timer) {
    $client->{$timer["op"]}($timer["tags"], $timer["value"], $timer["rusage"], $timer["hits"]);
}
$client->send();
"""


def php_available() -> bool:
    if shutil.which("php") is None:
        return False
    result = subprocess.run(
        ["php", "-n", "-d", "extension=pinba.so", "-r", "echo class_exists('PinbaClient');"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() == "1"


def require_php() -> None:
    if php_available():
        return
    message = "php-pinba is not installed (make test installs php-cli and php-pinba)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def php_send(spec: dict[str, Any], tmp_path: Path) -> bytes:
    """Run PinbaClient with `spec` and return the datagram it sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps({**spec, "server": f"127.0.0.1:{port}"}))
        script = tmp_path / "send.php"
        script.write_text(SCRIPT)
        result = subprocess.run(
            [
                "php",
                "-n",
                "-d",
                "extension=pinba.so",
                "-d",
                "pinba.enabled=1",
                "-d",
                "pinba.server=",
                "-d",
                "pinba.auto_flush=0",
                str(script),
                str(spec_file),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        data, _ = sock.recvfrom(65536)
        return data
