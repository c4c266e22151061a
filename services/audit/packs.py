"""Which pack an audit recomputes with: the version recorded in the events, or a "what if".

Every event names the pack id and version it was decided under. The library
holds every pack file it was given (the shipped packs plus archived versions
in `--pack-dir`), keyed by (id, version), so an audit uses exactly the rules
then in force. "What if" replaces them: a directory of other pack files
(matched by pack id, whatever their version) and/or parameter overrides such
as `{"linfen-2022": {"critical_illness.ratio": "0.65", "inpatient[linfen.assist.dibao].ratio": "0.8"}}`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from services.policy.pack import DEFAULT_PACK_DIR, Pack, PackError, load_pack

_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]+)\])?$")


def load_packs(directory: Path) -> list[Pack]:
    files = sorted(Path(directory).glob("*.toml"))
    if not files:
        raise PackError(f"no policy packs (*.toml) in {directory}")
    return [load_pack(f) for f in files]


def _split(path: str) -> list[str]:
    """`a.b[x.y].c` → ["a", "b[x.y]", "c"]: dots inside brackets belong to the rule id."""
    parts, depth, current = [], 0, ""
    for ch in path:
        if ch == "." and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        current += ch
    parts.append(current)
    return parts


def override(pack: Pack, changes: dict[str, Any]) -> Pack:
    """A copy of `pack` with parameters replaced; validated like a pack file. Raises PackError."""
    data = msgspec.to_builtins(pack)
    for path, value in changes.items():
        node: Any = data
        steps = _split(path)
        for i, step in enumerate(steps):
            m = _STEP.match(step)
            if m is None:
                raise PackError(f"{pack.id}: bad parameter path {path!r}")
            name, rule_id = m.groups()
            last = i == len(steps) - 1
            if not isinstance(node, dict) or name not in node:
                raise PackError(f"{pack.id}: no parameter {name!r} in {path!r}")
            if rule_id is not None:
                items = node[name]
                found = [x for x in items if isinstance(x, dict) and x.get("rule_id", x.get("code")) == rule_id]
                if not found:
                    raise PackError(f"{pack.id}: no rule {rule_id!r} in {name!r}")
                if last:
                    raise PackError(f"{pack.id}: {path!r} names a whole rule; name one of its parameters")
                node = found[0]
            elif last:
                node[name] = value
            else:
                node = node[name]
    data["version"], data["digest"] = f"{pack.version}+whatif", ""
    try:
        return msgspec.convert(data, Pack, strict=False)
    except msgspec.ValidationError as exc:
        raise PackError(f"{pack.id}: override does not validate: {exc}") from exc


class PackLibrary:
    """Packs by (id, version), with an optional what-if replacement per pack id."""

    def __init__(self, packs: list[Pack], what_if: list[Pack] | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None):
        self.versions = {(p.id, p.version): p for p in packs}
        self.what_if = {p.id: p for p in what_if or []}
        self.overrides = overrides or {}
        unknown = set(self.overrides) - {p.id for p in packs} - set(self.what_if)
        if unknown:
            raise PackError(f"overrides name unknown pack(s): {sorted(unknown)}")
        self._cache: dict[tuple[str, str], Pack | None] = {}
        for pack in [*packs, *self.what_if.values()]:     # a bad override fails now, not mid-audit
            if pack.id in self.overrides:
                override(pack, self.overrides[pack.id])

    @classmethod
    def load(cls, pack_dirs: list[Path] | None = None, what_if_dir: Path | None = None,
             overrides: dict[str, dict[str, Any]] | None = None) -> PackLibrary:
        packs = load_packs(DEFAULT_PACK_DIR)
        for directory in pack_dirs or []:
            packs.extend(load_packs(directory))
        return cls(packs, load_packs(what_if_dir) if what_if_dir else None, overrides)

    @property
    def is_what_if(self) -> bool:
        return bool(self.what_if or self.overrides)

    def resolve(self, pack_id: str, version: str | None) -> Pack | None:
        """The pack to recompute a decision made under (pack_id, version); None if not in the library."""
        key = (pack_id, version or "")
        if key not in self._cache:
            pack = self.what_if.get(pack_id) or self.versions.get(key)
            if pack is None and version is None:
                pack = next((p for (i, _), p in sorted(self.versions.items()) if i == pack_id), None)
            if pack is not None and pack_id in self.overrides:
                pack = override(pack, self.overrides[pack_id])
            self._cache[key] = pack
        return self._cache[key]
