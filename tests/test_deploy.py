"""The image and the compose file run the app's own commands, the ones the tests run: every
service's command is a real subcommand of app.py, and the image installs the pinned CPU torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def app_services() -> dict[str, dict]:
    return {name: spec for name, spec in COMPOSE["services"].items() if "build" in spec}


def test_every_service_runs_a_real_subcommand_of_app_py():
    services = app_services()
    assert set(services) == {"migrate", "web", "scheduler"}
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    for name, spec in services.items():
        command = spec["command"]
        assert command[:2] == ["python", "app.py"], (name, command)
        # argparse answers --help for a subcommand it has (exit 0), and refuses one it has not (2)
        shown = subprocess.run(
            [sys.executable, "app.py", *command[2:], "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, (name, shown.stderr)
    refused = subprocess.run(
        [sys.executable, "app.py", "no-such-command", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2


def test_the_processes_start_in_order_on_a_healthy_database():
    services = COMPOSE["services"]
    assert services["db"]["image"].startswith("postgres:16") and services["db"]["volumes"]
    assert "healthcheck" in services["db"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "scheduler"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert services[name]["env_file"] == ".env"
    assert services["web"]["environment"]["SCHEDULER_IN_PROCESS"] == "false"
    assert "WEB_WORKERS" in services["web"]["environment"]
    assert "OUTBOX_WORKERS" in services["scheduler"]["environment"]


def test_the_requirements_and_the_image_take_the_cpu_build_of_torch():
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^--extra-index-url https://download\.pytorch\.org/whl/cpu$", requirements, re.M)
    # On Linux x86_64 (PyPI's wheel there is the CUDA build) only the +cpu build satisfies the pin.
    linux = re.search(r'^torch==(\S+); sys_platform == "linux" and platform_machine == "x86_64"$', requirements, re.M)
    assert linux is not None and linux.group(1).endswith("+cpu")
    other = re.search(r'^torch==(\S+); sys_platform != "linux" or platform_machine != "x86_64"', requirements, re.M)
    assert other is not None and other.group(1) == linux.group(1).removesuffix("+cpu")
    # The image installs torch through requirements.txt only, and checks it got a build without CUDA.
    assert "pip install -r requirements.txt" in DOCKERFILE and "pip install torch" not in DOCKERFILE
    assert "torch.version.cuda is None" in DOCKERFILE
    assert "FROM python:3.11-slim" in DOCKERFILE and "HF_HUB_OFFLINE=1" in DOCKERFILE
    assert re.search(r"^USER (?!root)\S+", DOCKERFILE, re.M)
    assert "/livez" in DOCKERFILE and 'CMD ["python", "app.py"]' in DOCKERFILE
