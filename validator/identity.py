"""Who a miner is: the binding of a miner id to one Ed25519 key, and the check of its records.

With ``VALIDATOR_MINER_KEYS`` (the production setting) exactly the listed miners are known, each
with its listed key, and no registration binds anything. Without it (the local default) a miner
id is bound to the key of its first signed registration (trust on first use) and kept in a
changelogged table; a registration with another key is refused either way.

    book = KeyBook(tables.identities, settings.miner_keys)
    book.bind("miner-a", public_hex, now_ms)          # None, or why the registration is refused
    book.verify_score("miner-a", key, value, headers) # the SignedClaim, or IdentityError with the reason
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from streams.signing import SCORE, SignatureError, SignedClaim, parse_public_key, verify
from validator.errors import ValidatorError


class IdentityError(ValidatorError):
    """A record that its claimed sender did not provably send: unsigned, mis-signed or of an unbound id."""


class KeyBook:
    """Miner id -> public key, from the allow-list or trust on first use.

    book = KeyBook({}, {})                  # local: bindings come from registrations
    book.bind("m1", "ab12...", 0)           # -> None (bound); a second key -> the refusal reason
    """

    def __init__(self, table: MutableMapping[str, Any], allow_list: Mapping[str, str] | None = None) -> None:
        self.table = table
        self.allow: dict[str, Ed25519PublicKey] = {}
        self._allow_hex: dict[str, str] = {}
        for miner, text in (allow_list or {}).items():
            try:
                self.allow[miner] = parse_public_key(text)
            except SignatureError as exc:
                msg = f"VALIDATOR_MINER_KEYS: the key of {miner!r} is unusable: {exc}"
                raise ValidatorError(msg) from exc
            self._allow_hex[miner] = text.strip().lower()
        self._cache: dict[str, tuple[str, Ed25519PublicKey]] = {}

    @property
    def trust_on_first_use(self) -> bool:
        return not self.allow

    def public_hex(self, miner_id: str) -> str | None:
        if not self.trust_on_first_use:
            return self._allow_hex.get(miner_id)
        entry = self.table.get(miner_id)
        return str(entry["public_key"]) if entry else None

    def key_of(self, miner_id: str) -> Ed25519PublicKey | None:
        """The key records of ``miner_id`` must verify under, or None if it is not bound (yet)."""
        if not self.trust_on_first_use:
            return self.allow.get(miner_id)
        text = self.public_hex(miner_id)
        if text is None:
            return None
        cached = self._cache.get(miner_id)
        if cached is None or cached[0] != text:
            cached = (text, parse_public_key(text))
            self._cache[miner_id] = cached
        return cached[1]

    def refusal(self, miner_id: str, public_hex: str) -> str | None:
        """Why ``miner_id`` cannot be bound to ``public_hex``, or None if it is (or may be) bound to it."""
        try:
            parse_public_key(public_hex)
        except SignatureError as exc:
            return str(exc)
        known = self.public_hex(miner_id)
        if known is not None:
            return (
                None if known == public_hex.strip().lower() else f"{miner_id} is bound to another key ({known[:16]}...)"
            )
        if not self.trust_on_first_use:
            return f"{miner_id} is not in the allow-list (VALIDATOR_MINER_KEYS)"
        return None

    def bind(self, miner_id: str, public_hex: str, now_ms: int) -> str | None:
        """Bind ``miner_id`` to ``public_hex`` if it is unbound; returns None, or why it is refused."""
        refused = self.refusal(miner_id, public_hex)
        if refused is None and self.public_hex(miner_id) is None:
            self.table[miner_id] = {"public_key": public_hex.strip().lower(), "bound_at": int(now_ms)}
        return refused

    def verify_as(
        self, purpose: str, miner_id: str, key: bytes | None, value: bytes | None, headers: Any
    ) -> SignedClaim:
        """The claim of a record signed by ``miner_id`` for ``purpose``; ``IdentityError`` with the reason if not."""
        public = self.key_of(miner_id)
        if public is None:
            msg = f"no key is bound to miner {miner_id!r}"
            raise IdentityError(msg)
        try:
            return verify(public, purpose, miner_id, key, value, headers)
        except SignatureError as exc:
            raise IdentityError(str(exc)) from exc

    def verify_score(self, miner_id: str, key: bytes | None, value: bytes | None, headers: Any) -> SignedClaim:
        """A score chunk or completion marker on ``scores.<miner_id>`` that the miner signed."""
        return self.verify_as(SCORE, miner_id, key, value, headers)
