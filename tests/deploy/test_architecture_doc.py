"""docs/architecture.md is the page a newcomer reads first: its map of modules must stay true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
MAP = DOC.split("## The map", 1)[1].split("```", 2)[1]
PACKAGE = ROOT / "rotator"


def test_every_module_of_the_core_engine_and_adapters_is_on_the_map() -> None:
    modules = [
        *PACKAGE.glob("*.py"),
        *(PACKAGE / "engine").glob("*.py"),
        *(PACKAGE / "adapters").glob("*.py"),
        *(PACKAGE / "daemon").glob("*.py"),
    ]
    missing = [
        str(path.relative_to(PACKAGE))
        for path in modules
        if path.stem not in {"__init__", "__main__"}
        and not re.search(rf"(?<!\w){re.escape(path.stem)}(\.py|\b)", MAP)
    ]
    assert not missing, f"add to the map in docs/architecture.md: {missing}"


def test_every_subpackage_is_on_the_map() -> None:
    packages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    missing = [name for name in packages if f"{name}/" not in MAP]
    assert not missing, f"add to the map in docs/architecture.md: {missing}"


def test_every_file_the_map_names_exists() -> None:
    named = set(re.findall(r"[\w/]+\.(?:py|toml)", MAP))
    files = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*") if p.is_file()}
    files |= {p.name for p in ROOT.glob("*.toml")}

    def exists(name: str) -> bool:
        return any(f == name or f.endswith("/" + name) for f in files)

    unknown = [name for name in sorted(named) if not exists(name)]
    assert not unknown, f"the map in docs/architecture.md names files that do not exist: {unknown}"
