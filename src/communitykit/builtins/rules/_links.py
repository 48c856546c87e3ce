"""Finding links in chat text: with or without a scheme, in Chinese text, with
full-width punctuation, internationalized domain names, and invite links to
other chats.

Everything works on :func:`~communitykit.model.normalize_text` output (NFKC,
case-folded), so full-width letters and dots read as plain ones. Chinese text has no
spaces, so Chinese characters end a domain name (``请访问spam.com`` finds
``spam.com``); only the top-level domain may be Chinese (``spam.中国``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from communitykit.model import normalize_text

__all__ = [
    "CJK",
    "COMMON_TLDS",
    "Link",
    "ascii_domain",
    "domain_allowed",
    "find_links",
    "invite_kind",
    "prepare",
]

#: Chinese, Japanese and Korean scripts and their punctuation (as a regex class body)
CJK = (
    "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
)

#: Top-level domains a link without a scheme must end in to count as a link.
#: Common generic and country ones, and those spam favours; deliberately not the
#: ones that are everyday file extensions (``.py``, ``.md``, ``.sh``, ``.rs``,
#: ``.pl``, ``.js``, ``.ps``), so ``setup.py`` is not a link, nor the ones that are
#: English words (``.is``, ``.it``, ``.in``, ``.at``, ``.by``, ``.no``, ``.my``,
#: ``.be``, ``.us``, ``.am``, ``.id``), so ``done.it is`` is not one either. A
#: scheme (``http://``) or ``www.`` makes any domain a link, and a rule may add more
#: top-level domains.
_TLDS = """
    com net org info biz io co me tv cc xyz top site online club shop store app dev ai
    gg ly to ws pw su vip win bid loan link live life fun icu buzz work space website
    tech pro mobi name edu gov mil int asia cloud today news blog email click download
    stream party review trade date racing men cn hk tw mo sg vn th ph kr jp
    ru ua kz de uk eu fr es nl ch se fi dk ie pt gr cz hu ro bg tr
    il ae sa ir pk bd lk np au nz ca mx br ar cl pe ve za ng ke eg tk ml ga cf gq
    fm im lt lv ee si sk hr ba mk cy lu li bz vc ag
    рф укр бел 中国 中國 公司 网络 網絡 在线 香港 台湾 台灣 网址 商城 网店 游戏
"""
COMMON_TLDS: frozenset[str] = frozenset(_TLDS.split())

_CJK_TLDS = sorted((t for t in COMMON_TLDS if re.search(f"[{CJK}]", t)), key=len, reverse=True)

# a letter or digit of a domain label: any script's, except Chinese/Japanese/Korean
_CHAR = rf"(?:(?![{CJK}])[^\W_])"
_LABEL = rf"{_CHAR}(?:{_CHAR}|-)*"
_URL = re.compile(
    # not inside a word, an e-mail address or a path (a Chinese character before is fine)
    rf"(?<![-._@/])(?:(?<=[{CJK}])|(?<!{_CHAR}))"
    r"(?:(?P<scheme>https?|ftp)://)?"
    rf"(?P<host>(?:{_LABEL}\.)+(?:{'|'.join(_CJK_TLDS)}|{_LABEL}))"
    r"(?::\d{1,5})?"
    rf"(?P<path>[/?#][^\s<>\"{CJK}]*)?"
)
# an ideographic full stop between two letters is a dot in disguise: spam。com
_DOT = re.compile(rf"(?<={_CHAR})[\u3002\uff61](?={_CHAR})")
_TRAILING = ".,;:!?)]}'\""


class Link(NamedTuple):
    """A link found in a text: its domain (as written, normalized) and path."""

    host: str
    path: str
    scheme: bool

    @property
    def text(self) -> str:
        return self.host + self.path


def prepare(text: str) -> str:
    """The text as links are searched in: normalized, disguised dots made dots."""
    text = normalize_text(text)
    if "\u3002" in text or "\uff61" in text:
        return _DOT.sub(".", text)
    return text


@functools.lru_cache(maxsize=64)
def _tlds_with(extra: frozenset[str]) -> tuple[frozenset[str], re.Pattern[str]]:
    """The top-level domains a link without a scheme may end in, and a pattern
    that finds something in every text with a link: a scheme's ``://``, a
    ``www.``, or a dot right before one of those top-level domains or ``xn--``."""
    tlds = COMMON_TLDS | extra
    ends = "|".join(re.escape(tld) for tld in sorted(tlds, key=len, reverse=True))
    return tlds, re.compile(rf"://|www\.|\.(?:xn--|{ends})")


def find_links(text: str, extra_tlds: Iterable[str] = ()) -> Iterator[Link]:
    """Every link in ``text`` (already :func:`prepare`-d), in order.

    A link with a scheme (``http://``) or ``www.`` counts whatever its domain;
    without, its top-level domain must be one of :data:`COMMON_TLDS`,
    ``extra_tlds`` or punycode (``xn--``), so ``3.14``, ``e.g.`` and ``notes.txt``
    are not links.
    """
    if "." not in text:  # every link's domain has a dot
        return
    extra = extra_tlds if isinstance(extra_tlds, frozenset) else frozenset(extra_tlds)
    tlds, screen = _tlds_with(extra)
    if screen.search(text) is None:  # nothing a link needs: skip the slower search
        return
    for found in _URL.finditer(text):
        host = found.group("host")
        scheme = found.group("scheme") is not None
        tld = host.rsplit(".", 1)[1]
        if not (scheme or host.startswith("www.") or tld in tlds or tld.startswith("xn--")):
            continue
        path = (found.group("path") or "").rstrip(_TRAILING)
        yield Link(host=host, path=path, scheme=scheme)


def ascii_domain(domain: str) -> str:
    """A domain in its ASCII (punycode) form, so ``bücher.de`` and
    ``xn--bcher-kva.de`` compare equal; unchanged when it cannot be encoded."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def domain_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is an allowed domain or a subdomain of one (both ASCII form)."""
    return any(host == domain or host.endswith("." + domain) for domain in allowed)


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def invite_kind(link: Link) -> str | None:
    """The chat platform ``link`` invites to another group on, or ``None``."""
    host, path = link.host, link.path
    if any(_under(host, d) for d in ("t.me", "telegram.me", "telegram.dog")):
        if path.startswith(("/joinchat/", "/+")):
            return "Telegram"
        return None
    if _under(host, "discord.gg"):
        return "Discord" if len(path) > 1 else None
    if any(_under(host, d) for d in ("discord.com", "discordapp.com")):
        return "Discord" if path.startswith("/invite/") else None
    if _under(host, "chat.whatsapp.com"):
        return "WhatsApp" if len(path) > 1 else None
    if _under(host, "weixin.qq.com"):
        return "WeChat" if path.startswith("/g/") else None
    if _under(host, "u.wechat.com"):
        return "WeChat" if len(path) > 1 else None
    if any(_under(host, d) for d in ("qm.qq.com", "jq.qq.com")):
        return "QQ"
    if _under(host, "line.me"):
        return "LINE" if path.startswith("/r/ti/g/") else None
    if _under(host, "signal.group"):
        return "Signal"
    return None


#: tg://join?invite=... (a Telegram invite that is no web link)
TG_JOIN = re.compile(r"tg://join\?invite=[\w-]+")
