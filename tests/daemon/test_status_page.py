"""/status: the renderer (escaping, no full key id, no secret), the page on the daemon's real
listener with its security headers, and the page in a real headless Chromium without JavaScript
(the screenshot in docs/img/status-page.png comes from that test)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from handoff_world import BASE, close, make_daemon
from rotator.adapters.status_page import SECURITY_HEADERS, StatusView, TrackedRow, render
from rotator.key_report import AccountReport, KeyReport
from rotator.model import Secret, short_key_id

from fixtures.simulator import MASTER_KEY, MASTER_SECRET
from fixtures.vault import free_port

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FULL_KEY_ID = "STATUSKEYID0000XY"
LEAKED = "STATUSSECRET000000000000000000000001"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "status-page.png"


def view(**kw) -> StatusView:
    Secret(LEAKED)  # a secret this process knows: the redactor replaces it wherever it appears
    keys = (
        KeyReport(
            name="bot1",
            account="main",
            sub_uid=2001,
            state="idle",
            key_id=FULL_KEY_ID,
            expires_at=NOW + timedelta(days=40),
            next_action="rotate",
            next_at=NOW + timedelta(days=26),
            reason="expires 2026-04-10 12:00Z; rotation starts before then",
            last_rotation_at=NOW - timedelta(days=50),
            rotations=3,
        ),
        KeyReport(
            name="<script>alert(1)</script>",
            account="main",
            sub_uid=2002,
            state="failed",
            key_id="SHORT",
            expires_at=NOW + timedelta(days=2),
            next_action="verify new key",
            next_at=NOW + timedelta(minutes=5),
            reason="retrying",
            last_error=f"Bybit said no & api_secret={LEAKED}",
        ),
    )
    accounts = (
        AccountReport(name="main", master_expires_at=NOW + timedelta(days=10), master_ok=True),
        AccountReport(name="other", error="account other: no master key at Vault path x"),
    )
    tracked = (
        TrackedRow(
            name="webui-rsa",
            account="main",
            kind="sub_key",
            expires_at=NOW + timedelta(days=6),
            next_reminder="1 day before (2026-03-06 12:00Z)",
            last_sent="7 days before, at 2026-03-01 11:00Z",
        ),
    )
    base = {
        "now": NOW,
        "phase": "running",
        "vault_ok": True,
        "bybit_ok": None,
        "keys": keys,
        "accounts": accounts,
        "last_reconcile": {"main": NOW - timedelta(minutes=3)},
        "tracked": tracked,
    }
    return StatusView(**{**base, **kw})


def test_renderer_shows_every_fact_escaped_and_nothing_secret():
    html = render(view())
    assert FULL_KEY_ID not in html
    assert short_key_id(FULL_KEY_ID) in html
    assert LEAKED not in html
    assert "[redacted]" in html
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Bybit said no &amp; api_secret" in html
    for fact in (
        "bot1",
        "idle",
        "40.0",  # days left
        "rotate",
        "2026-03-27 12:00Z",  # next action at
        "expires 2026-04-10 12:00Z; rotation starts before then",
        "2026-01-10 12:00Z",  # last rotation
        '<td class="num crit">2.0</td>',  # two days left on a failing key
        "verify new key",
        '<td class="num warn">10.0</td>',  # master key days left
        "no master key at Vault path x",
        "webui-rsa",
        "1 day before (2026-03-06 12:00Z)",
        "not yet checked",  # Bybit not probed yet
    ):
        assert fact in html, fact
    # No script, no external resource, nothing to load at all.
    for forbidden in ("<script", "src=", "href=", "<link", "<img", "<form", "javascript:"):
        assert forbidden not in html.lower(), forbidden


def test_renderer_with_nothing_yet():
    html = render(view(keys=(), accounts=(), tracked=(), vault_ok=None))
    assert html.count("No reconcile has finished yet.") == 2
    assert "Tracked keys" not in html


@pytest.fixture(name="status_daemon")
def _status_daemon(simulator, sim_clock, bao, vault_store, vault_prefix, monkeypatch):
    monkeypatch.setenv("T_HANDOFF_VAULT_TOKEN", bao.root_token)
    vault_store.write(
        f"{vault_prefix}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )
    port = free_port()
    text = BASE.format(
        sim=simulator.base_url, vault=bao.address, prefix=vault_prefix, metrics="true", port=port
    )
    text += '[[tracked]]\nname = "main-master"\naccount = "main"\nkind = "master"\n'
    d = make_daemon(text, sim_clock)
    assert d.start_http()
    d.probe()
    d.tick()
    sim_clock.set(d.due["bot2"])  # bot2's rotation: new key handed off, old one in its grace
    d.run_due(sim_clock.now())
    d.phase = "running"
    records = [vault_store.read(f"{vault_prefix}/keys/{k}").data for k in ("bot1", "bot2")]
    yield d, f"http://127.0.0.1:{port}/status", records
    close(d)


def test_status_on_the_daemon_listener(status_daemon):
    """GET /status: 200, HTML, every security header; the keys the daemon just created are
    there by name and short id, their full ids and secrets are not."""
    d, url, records = status_daemon
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        response.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    )
    assert response.headers["content-security-policy"].startswith(
        "default-src 'none'; style-src 'unsafe-inline';"
    )
    expected = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cache-control": "no-store",
    }
    assert {name: response.headers.get(name) for name in expected} == expected
    page = response.text
    for record in records:
        assert record["api_key"] not in page
        assert record["api_secret"] not in page
        assert short_key_id(record["api_key"]) in page
    assert "bot1" in page
    assert "bot2" in page
    assert MASTER_KEY not in page
    assert MASTER_SECRET not in page
    assert "Accounts and master keys" in page
    assert d.reports["bot1"].state == "idle"
    assert d.reports["bot2"].next_action == "revoke old key"
    assert "revoke old key" in page
    assert "grace period for consumers of the old key" in page
    assert "main-master" in page  # the tracked master key (IP-bound here: never expires)
    assert "never expires" in page
    assert httpx.post(url).status_code == 501  # read-only: no other method


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (apt-get install chromium); CI=true cannot skip")
    pytest.skip("chromium is not installed (apt-get install chromium)")
    raise AssertionError  # unreachable


JS_PROBE = "data:text/html,<p id=x>static</p><script>x.textContent='JS RAN'</script>"


def test_status_in_headless_chromium_without_javascript(status_daemon, tmp_path):
    """A real browser with JavaScript blocked (proven on a probe page first) renders the tables,
    and the Content-Security-Policy refuses nothing on the page. ROTATOR_UPDATE_SCREENSHOT=1
    also writes the screenshot to docs/img/status-page.png."""
    browser = chromium()
    _, url, _ = status_daemon
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(
        '{"profile": {"default_content_setting_values": {"javascript": 2}}}'
    )
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*common, *args], capture_output=True, text=True, timeout=90, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    probe = run("--dump-dom", JS_PROBE)
    assert '<p id="x">static</p>' in probe.stdout  # the script would have replaced the text
    dom = run("--dump-dom", url)
    assert "<table>" in dom.stdout
    assert "bot1" in dom.stdout
    assert "Content Security Policy" not in dom.stderr  # nothing on the page was refused
    shot = tmp_path / "status.png"
    run("--window-size=1600,760", f"--screenshot={shot}", url)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000  # a rendered page, not a blank one
    if os.environ.get("ROTATOR_UPDATE_SCREENSHOT") == "1":
        DOCS_IMG.write_bytes(data)
