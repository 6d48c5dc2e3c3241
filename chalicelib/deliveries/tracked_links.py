"""The tracked links of one recipient's message: tokens minted with the active key."""

from __future__ import annotations

from typing import Mapping

from chalicelib import tokens
from chalicelib.deliveries.links import URL_ID_MIRROR, URL_ID_OPEN, URL_ID_UNSUBSCRIBE
from chalicelib.keyring import KeyRing


class RecipientLinks:
    """A links.LinkMaker for (delivery, log id): /r, /o, /u and /m URLs under `base_url`."""

    def __init__(self, base_url: str, keyring: KeyRing, delivery_id: str, log_id: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._keyring = keyring
        self._delivery_id = delivery_id
        self._log_id = log_id

    def _token(self, kind: int, url_id: int, params: str = "") -> str:
        return tokens.mint(kind, self._keyring.active_key_id, self._keyring.active_secret,
                           self._delivery_id, self._log_id, url_id, params)

    def click(self, url_id: int, params: Mapping[str, str]) -> str:
        encoded = tokens.encode_params(params)
        url = f"{self._base_url}/r/{self._token(tokens.KIND_CLICK, url_id, encoded)}"
        return f"{url}?p={encoded}" if encoded else url

    def open(self) -> str:
        return f"{self._base_url}/o/{self._token(tokens.KIND_OPEN, URL_ID_OPEN)}"

    def unsubscribe(self) -> str:
        return f"{self._base_url}/u/{self._token(tokens.KIND_OPTOUT, URL_ID_UNSUBSCRIBE)}"

    def mirror(self) -> str:
        return f"{self._base_url}/m/{self._token(tokens.KIND_MIRROR, URL_ID_MIRROR)}"
