"""Secrets never leave the process: the one rule for what is a secret, and the redactions of
the command line (expvar's `cmdline`) and of request values (wide events).

A name is secret when one of its words (split at punctuation, brackets and camelCase) contains
a strong secret word (password, token, secret, …) or is a short one (key, pass, pwd, sig, …).
Values are replaced by REDACTED exactly where the secret stands; what is around it stays
readable.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from urllib.parse import unquote

__all__ = [
    "REDACTED",
    "SECRET_PARAMS",
    "VALUE_LIMIT",
    "cap",
    "redact_argv",
    "redact_path",
    "redact_query",
    "redact_text",
    "secret_name",
]

REDACTED = "REDACTED"
# Parameter names redacted whole, beside those holding a secret word: OAuth's one-time code.
SECRET_PARAMS = frozenset(("code",))
# The most characters of one value copied from a request into an event.
VALUE_LIMIT = 2048
TRUNCATED = "…[truncated]"

_STRONG = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "signature",
    "jwt",
    "cookie",
    "session",
    "sessid",
    "apikey",
    "privatekey",
    "accesskey",
    "auth",
    "bearer",
)
_SHORT = frozenset(("key", "pass", "pwd", "pw", "sig", "sid", "otp", "pin"))
# Words that hold a strong word but name nothing secret.
_HARMLESS = frozenset(
    ("author", "authors", "authored", "authority", "authorities", "tokens", "tokenizer")
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def secret_name(name: str, extra: Collection[str] = ()) -> bool:
    """Whether a value named `name` (an option, a parameter, a header) is a secret. `extra`:
    more names (lower case) that are, whole."""
    if name.lower() in extra:
        return True
    for word in _WORDS.findall(name):
        word = word.lower()
        if word in _SHORT:
            return True
        # Words run together (dbpassword, xauthtoken) hold a strong word too.
        if word not in _HARMLESS and any(strong in word for strong in _STRONG):
            return True
    return False


# Keys with a provider's own prefix, wherever they stand.
_PROVIDER_KEY = re.compile(
    r"\b(?:"
    r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}"  # Stripe secret and restricted keys
    r"|whsec_[0-9A-Za-z]{16,}"  # Stripe webhook secrets
    r"|gh[pousr]_[0-9A-Za-z]{30,}|github_pat_\w{30,}"  # GitHub tokens
    r"|glpat-[\w-]{20,}"  # GitLab
    r"|xox[abposr]-[\w-]{10,}"  # Slack
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[\w-]{35}"  # Google API keys
    r"|sk-(?:proj-|ant-)?[\w-]{20,}"  # OpenAI, Anthropic
    r"|SG\.[\w-]{16,}\.[\w-]{16,}"  # SendGrid
    r"|npm_[0-9A-Za-z]{30,}|pypi-[\w-]{50,}|hf_[0-9A-Za-z]{30,}"  # registries, Hugging Face
    r"|eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+"  # JSON Web Tokens
    r")"
)
# scheme://user:password@host: the password runs to the last "@" of the authority (before any
# "?" or "#"), so a password with "@" or "/" in it is covered whole.
_URL_USERINFO = re.compile(r"([a-zA-Z][\w+.-]*://[^/@:\s?#]*):([^\s]*?)@(?=[^@?#\s]*(?:[?#\s]|$))")
_URL_USERINFO_LOOSE = re.compile(r"([a-zA-Z][\w+.-]*://[^/@:\s?#]*):([^\s]*)@")
# name=value inside a value: URL query and matrix parameters, DSN and conninfo pairs. A value
# is quoted or braced, or runs to the next separator; which separators end it depends on where
# it stands (a path's matrix value ends at "/", an ADO DSN's value at ";" only).
_NAME = r"(?P<lead>^|[?&;,\s])(?P<name>[\w.%\-\[\]]+)(?P<eq>\s*=\s*)"
_QUOTED = r"\{[^}]*\}|\"[^\"]*\"|'[^']*'|"
_PAIR = re.compile(_NAME + r"(?P<value>" + _QUOTED + r"[^&;,#\s]*)")
_PATH_PAIR = re.compile(_NAME + r"(?P<value>[^&;,#/\s]*)")
_DSN_PAIR = re.compile(_NAME + r"(?P<value>" + _QUOTED + r"[^;]*)")
# A header written out: `Authorization: Bearer x`, `Cookie: a=b`, `X-Api-Key: x`.
_HEADER = re.compile(r"^(?P<name>[\w-]+)(?P<colon>\s*:\s*)(?P<value>.+)$", re.S)
_SCHEME = re.compile(r"^(Bearer|Basic|Digest|Token|Bot|Negotiate|NTLM|AWS4-HMAC-SHA256)\s+", re.I)
_BEARER = re.compile(r"\b(Bearer|Basic|Token)(\s+)[\w\-.~+/=:]{8,}", re.I)


def _userinfo(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    redacted = _URL_USERINFO.sub(rf"\1:{REDACTED}@", text)
    if redacted == text:
        redacted = _URL_USERINFO_LOOSE.sub(rf"\1:{REDACTED}@", text)
    return redacted


def _pairs(text: str, extra: Collection[str], pair: re.Pattern[str] = _PAIR) -> str:
    if "=" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if not secret_name(unquote(name) if "%" in name else name, extra):
            return match[0]
        return f"{match['lead']}{name}{match['eq']}{REDACTED}"

    return pair.sub(replace, text)


def redact_text(text: str, extra_names: Collection[str] = ()) -> str:
    """`text` with every secret it holds replaced: URL passwords, secret `name=value` pairs
    (query, DSN, conninfo), a secret header's value, bearer credentials and provider keys."""
    header = _HEADER.match(text)
    if header is not None and secret_name(header["name"], extra_names):
        scheme = _SCHEME.match(header["value"])
        kept = scheme[0] if scheme and header["name"].lower().endswith("authorization") else ""
        return f"{header['name']}{header['colon']}{kept}{REDACTED}"
    text = _userinfo(text)
    dsn = ";" in text and "&" not in text and "://" not in text
    text = _pairs(text, extra_names, _DSN_PAIR if dsn else _PAIR)
    text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    return _PROVIDER_KEY.sub(REDACTED, text)


_OPTION = re.compile(r"^(?P<name>-{0,2}[A-Za-z_][\w.\-\[\]]*)=(?P<value>.*)$", re.S)
_FLAG = re.compile(r"^--?[A-Za-z][\w.-]*$")
# mysql's -pSECRET (a number after -p is a port, as in many tools, and stays).
_SHORT_PASSWORD = re.compile(r"^-p(?!\d+$)(?=.)")


def redact_argv(argv: Sequence[str], extra: Sequence[re.Pattern[str]] = ()) -> list[str]:
    """The command line with every secret replaced, each argument still one string: the value
    of a secret option (`--password=…`, `--api-key …`, `-pSECRET`, `TOKEN=…`), and the secrets
    inside any argument (see `redact_text`); then whatever the `extra` patterns match."""
    out: list[str] = []
    pending = False
    for argument in argv:
        text = argument
        if pending and not text.startswith("--"):
            text = REDACTED
            pending = False
        else:
            pending = False
            option = _OPTION.match(text)
            if option is not None and secret_name(option["name"].lstrip("-")):
                text = f"{option['name']}={REDACTED}"
            elif _SHORT_PASSWORD.match(text):
                text = f"-p{REDACTED}"
            elif _FLAG.match(text) and secret_name(text.lstrip("-")):
                pending = True
            elif option is not None:
                text = f"{option['name']}={redact_text(option['value'])}"
            else:
                text = redact_text(text)
        for pattern in extra:
            text = pattern.sub(REDACTED, text)
        out.append(text)
    return out


def redact_query(query: str, extra_names: Collection[str] = ()) -> str:
    """A query string with the values of secret parameters (`token`, `X-Amz-Signature`,
    `user[password]`, `token[]`, percent-encoded or not) replaced; the rest kept byte for
    byte."""
    return _pairs(query, extra_names)


def redact_path(path: str, extra_names: Collection[str] = ()) -> str:
    """A path with the values of secret matrix parameters (`/a;token=x/b`) replaced."""
    return _pairs(path, extra_names, _PATH_PAIR) if ";" in path else path


def cap(value: str, limit: int = VALUE_LIMIT) -> str:
    """`value` cut to `limit` characters, marked as truncated when cut."""
    if len(value) <= limit:
        return value
    return value[:limit] + TRUNCATED
