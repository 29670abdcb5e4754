"""The daemon loads heavy libraries only where they are used (docs/performance.md, "Memory"):
a fresh interpreter that imports what `rotator run` imports must not have them in sys.modules."""

import json
import subprocess
import sys

# Library -> where it is imported instead (the one place that needs it).
LAZY = {
    "cryptography": "rotator/adapters/bybit/signing.py sign_rsa: RSA keys only",
    "ruamel": "rotator/adapters/bot_config.py: config_file hooks on YAML files only",
    "tomlkit": "rotator/adapters/bot_config.py: config_file hooks on TOML files only",
    "rich": "rotator/cli/output.py: tables on a TTY only (hidden from structlog and httpx)",
    "pygments": "nowhere (httpx's command line would import it: hidden)",
}


def loaded_after_importing(*modules: str, command: str = "run") -> set[str]:
    """The top-level packages a fresh interpreter holds after the CLI loaded `command` (as
    `rotator <command>` does) and then imported `modules`."""
    code = (
        "import importlib, json, sys\n"
        "from rotator.cli import cli\n"
        f"assert cli.get_command(None, {command!r}) is not None\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


def test_the_daemon_does_not_import_libraries_it_may_never_use():
    """What `rotator run` imports (the CLI, its command, the daemon) leaves them out."""
    loaded = loaded_after_importing("rotator.daemon")
    assert not loaded & set(LAZY), {name: LAZY[name] for name in loaded & set(LAZY)}


def test_every_command_loads_without_rich_and_rich_still_imports():
    """structlog and httpx are imported without rich by every command; rich itself stays
    importable afterwards (for the tables of status and plan on a TTY)."""
    loaded = loaded_after_importing("rich.table", command="status")
    assert {"structlog", "httpx", "rich"} <= loaded
    code = (
        "import structlog.dev\n"
        "from rotator.cli import cli\n"
        "cli.get_command(None, 'plan')\n"
        "import rich.console\n"
        "print(structlog.dev.rich is None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"  # imported before the CLI: left as it was


def test_the_lazy_libraries_load_when_used(tmp_path):
    """The other side: an RSA signature and a TOML edit still find their library."""
    code = (
        "import sys\n"
        "from cryptography.hazmat.primitives import serialization\n"
        "from cryptography.hazmat.primitives.asymmetric import rsa\n"
        "from rotator.adapters import bot_config\n"
        "from rotator.adapters.bybit import sign_rsa\n"
        "pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(\n"
        "    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,\n"
        "    serialization.NoEncryption()).decode()\n"
        "assert sign_rsa(pem, 'message')\n"
        "out = bot_config.set_fields('a = 1\\nkey = \"old\"\\n', 'toml', {'key': 'new'}, 'f')\n"
        "assert out == 'a = 1\\nkey = \"new\"\\n', out\n"
        "out = bot_config.set_fields('key: old\\n', 'yaml', {'key': 'new'}, 'f')\n"
        "assert out == 'key: new\\n', out\n"
        "print('tomlkit' in sys.modules and 'ruamel' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "True"
