"""`python app.py` as a user runs it: it serves, says which channels are off, and logs no secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from tests.fakes.providers import encode_form, twilio_form

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "TWILIO_ACCOUNT_SID": "AC" + "7" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-secret-token-123",
    "TWILIO_WHATSAPP_FROM": "whatsapp:+15550001111",
    "TWILIO_SMS_FROM": "+15550001111",
    "MESSENGER_PAGE_ACCESS_TOKEN": "page-secret-token-456",
    "MESSENGER_APP_SECRET": "app-secret-789",
    "MESSENGER_VERIFY_TOKEN": "verify-secret-000",
    "WHATSAPP_CLOUD_TOKEN": "cloud-secret-token-321",
    "WHATSAPP_CLOUD_PHONE_NUMBER_ID": "109000000000001",
    "WHATSAPP_CLOUD_APP_SECRET": "cloud-app-secret-654",
    "WHATSAPP_CLOUD_VERIFY_TOKEN": "cloud-verify-secret-987",
}


def serve_once(tmp_path: Path, extra: dict[str, str], send_sms_from: str | None = None) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}", "PORT": str(port), **extra})
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert b"widget.js" in resp.read()
        if send_sms_from:
            url = f"http://127.0.0.1:{port}/webhooks/twilio/sms"
            form = twilio_form("sms", send_sms_from, "hello")
            signature = RequestValidator(SECRETS["TWILIO_AUTH_TOKEN"]).compute_signature(url, form)
            request = urllib.request.Request(
                url,
                data=encode_form(form),
                headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
            )
            with urllib.request.urlopen(request, timeout=5) as resp:
                assert resp.status == 200
            time.sleep(3)  # the reply's send fails (nothing listens at TWILIO_API_BASE) and is logged
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "Traceback" not in out, out
    return out


@pytest.mark.parametrize("configured", [True, False])
def test_serve(tmp_path, configured):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    extra = {**SECRETS, "TWILIO_API_BASE": closed, "LOG_LEVEL": "DEBUG"} if configured else {}
    out = serve_once(tmp_path, extra, "+14155550123" if configured else None)
    if configured:
        assert "send will be retried" in out
        assert "4155550123" not in out
    off = [line for line in out.splitlines() if "channel off" in line]
    assert len(off) == (0 if configured else 4), out
    for secret in (
        "twilio-secret-token-123",
        "page-secret-token-456",
        "app-secret-789",
        "verify-secret-000",
        "cloud-secret-token-321",
        "cloud-app-secret-654",
        "cloud-verify-secret-987",
    ):
        assert secret not in out
