"""Cookies read from an ended browser's profile, for a context whose browser closed before its stop could ask it.

At a normal stop the cookies come over CDP (core.cookies) while Chromium still
runs. A browser that exited by itself (``browser.close()`` over CDP) cannot be
asked, but on a clean exit it has flushed every cookie to ``Default/Cookies``.
With ``--password-store=basic`` Chromium encrypts values as ``v10``: AES-128-CBC
under a key derived from the fixed password "peanuts" (os_crypt_linux.cc), and
since database version 24 the plaintext starts with the SHA-256 of the host.
Checked on Chromium 156: every cookie set over CDP read back equal.
"""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from core.cookies import DEFAULT_SAME_SITE, sort_key

V10 = b"v10"
KEY = hashlib.pbkdf2_hmac("sha1", b"peanuts", b"saltysalt", 1, 16)
IV = b" " * 16
#: From this version on, a decrypted value starts with the SHA-256 digest of its host_key.
HOST_DIGEST_VERSION = 24
#: Chromium counts time in microseconds since 1601-01-01.
WINDOWS_EPOCH_OFFSET = 11_644_473_600
SAME_SITE = {0: "None", 1: "Lax", 2: "Strict"}
SINGLETON_LOCK = "SingletonLock"


class ProfileCookiesError(RuntimeError):
    pass


def exited_cleanly(profile: Path) -> bool:
    """Chromium removes its ``SingletonLock`` link only on a clean shutdown; a crash or SIGKILL leaves it.

    (The Preferences file's ``exit_type`` is no guide: Chromium writes it lazily,
    so a browser killed in its first seconds still shows the last run's "Normal".)
    """
    return not (profile / SINGLETON_LOCK).is_symlink()


def _decrypt(encrypted: bytes, host: str, version: int) -> str:
    if not encrypted.startswith(V10):
        raise ProfileCookiesError("a cookie is encrypted with a key other than the basic password store's")
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(IV)).decryptor()
    plain = decryptor.update(encrypted[len(V10):]) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    if version >= HOST_DIGEST_VERSION:
        if plain[:32] != hashlib.sha256(host.encode()).digest():
            raise ProfileCookiesError("a cookie value does not belong to its host")
        plain = plain[32:]
    return plain.decode()


def read_profile_cookies(profile: Path) -> list[dict]:
    """Every cookie of the ended browser's profile, in the API's shape and order."""
    database = profile / "Default" / "Cookies"
    if not database.exists():
        return []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        version = int(dict(connection.execute("SELECT key, value FROM meta").fetchall()).get("version", 0))
        rows = connection.execute(
            "SELECT host_key, name, value, encrypted_value, path, expires_utc, is_secure, is_httponly,"
            " samesite, is_persistent FROM cookies"
        ).fetchall()
    except sqlite3.Error as error:
        raise ProfileCookiesError(f"the profile's cookie database is unreadable: {error}") from error
    finally:
        connection.close()
    cookies = [
        {
            "name": name,
            "value": _decrypt(encrypted, host, version) if encrypted else value,
            "domain": host,
            "path": path,
            "secure": bool(secure),
            "httpOnly": bool(http_only),
            "sameSite": SAME_SITE.get(same_site, DEFAULT_SAME_SITE),
            "expires": int(expires / 1_000_000 - WINDOWS_EPOCH_OFFSET) if persistent and expires else None,
        }
        for host, name, value, encrypted, path, expires, secure, http_only, same_site, persistent in rows
    ]
    return sorted(cookies, key=sort_key)
