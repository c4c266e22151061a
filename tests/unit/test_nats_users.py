"""The embedded server's NATS users: generated once, one accounts definition, URLs that never leak a password."""
from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import bcrypt
import pytest

from services.runtime.nats_users import (ACCOUNTS_CONF, NatsUser, accounts_config, nats_users, read_nats_users,
                                         redact_url, url_for)

REPO = Path(__file__).resolve().parents[2]


def test_users_are_generated_once_private_and_kept(tmp_path: Path) -> None:
    assert read_nats_users(tmp_path) is None                     # reading never generates
    users = nats_users(tmp_path)
    path = tmp_path / "nats-users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert list(stored) == ["platform", "ledger", "admin", "sys"]
    assert all(stored[name] == {"user": name, "password": users[name].password} for name in stored)
    assert len({u.password for u in users.values()}) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", u.password) for u in users.values())   # 256 bits, URL-safe
    assert nats_users(tmp_path) == users == read_nats_users(tmp_path)


def test_a_broken_users_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "nats-users.json").write_text('{"platform": {"user": "platform", "password": "p"}}')
    with pytest.raises(ValueError, match=r"nats-users.json lacks the NATS user\(s\) ledger, admin, sys"):
        nats_users(tmp_path)
    (tmp_path / "nats-users.json").write_text("not json")
    with pytest.raises(ValueError, match="nats-users.json is not a JSON object"):
        read_nats_users(tmp_path)


def test_the_embedded_config_is_the_deploy_accounts_file_with_hashed_passwords(tmp_path: Path) -> None:
    deploy = (REPO / "deploy" / "nats" / "accounts.conf").read_text()
    assert ACCOUNTS_CONF.read_text() == deploy                   # one definition (a symlink in the repository)
    users = nats_users(tmp_path)
    config = accounts_config(users)
    assert config.endswith(deploy)
    for name, user in users.items():
        digest = re.search(rf'^NATS_{name.upper()}_PASSWORD: "(\$2a\$[^"]+)"$', config, re.M).group(1)
        assert bcrypt.checkpw(user.password.encode(), digest.encode())
        assert user.password not in config


def test_urls_carry_the_user_and_logs_never_do() -> None:
    user = NatsUser("platform", "s3cr3t-_x")
    url = url_for("nats://127.0.0.1:4222", user)
    assert url == "nats://platform:s3cr3t-_x@127.0.0.1:4222"
    assert redact_url(url) == "nats://127.0.0.1:4222"
    assert redact_url("nats://a:p@n1:4222, tls://n2:4222") == "nats://n1:4222,tls://n2:4222"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
