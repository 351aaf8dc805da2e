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
from urllib.parse import unquote, unquote_plus

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
_SHORT = frozenset(("key", "pass", "pwd", "pw", "sig", "sid", "otp"))
# Words that hold a strong word (or end in "pass") but name nothing secret.
_HARMLESS = frozenset(
    (
        "author",
        "authors",
        "authored",
        "authority",
        "authorities",
        "tokens",
        "tokenizer",
        "bypass",
        "compass",
        "surpass",
        "trespass",
        "overpass",
        "underpass",
    )
)
# On the command line, a secret word followed by one of these names a setting about the
# secret, not the secret (`--session-timeout=30`, `--cookie-name=sid`, `--token-limit 512`).
_QUALIFIERS = frozenset(
    (
        "age",
        "algorithm",
        "backend",
        "class",
        "count",
        "dir",
        "domain",
        "enabled",
        "endpoint",
        "engine",
        "expiry",
        "expires",
        "file",
        "format",
        "header",
        "host",
        "interval",
        "length",
        "level",
        "lifetime",
        "limit",
        "max",
        "method",
        "min",
        "mode",
        "name",
        "path",
        "policy",
        "port",
        "prefix",
        "provider",
        "realm",
        "samesite",
        "scheme",
        "secure",
        "size",
        "store",
        "timeout",
        "ttl",
        "type",
        "uri",
        "url",
        "version",
    )
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def secret_name(name: str, extra: Collection[str] = (), *, qualified: bool = False) -> bool:
    """Whether a value named `name` (an option, a parameter, a header) is a secret. `extra`:
    more names (lower case) that are, whole. `qualified`: a last word such as `timeout` or
    `name` makes it a setting about the secret instead (the command line's rule; requests
    redact by the secret word alone)."""
    if name.lower() in extra:
        return True
    words = [word.lower() for word in _WORDS.findall(name[:200])]
    if qualified and len(words) > 1 and words[-1] in _QUALIFIERS:
        return False
    for word in words:
        if word in _SHORT:
            return True
        if word in _HARMLESS:
            continue
        # Words run together (dbpassword, xauthtoken, requirepass) hold a secret word too.
        if word.endswith("pass") or any(strong in word for strong in _STRONG):
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
# user:password@host without a scheme (Go's MySQL DSN `user:pw@tcp(db:3306)/x`, scp-like).
_BARE_USERINFO = re.compile(r"(?<![\w/:.@%+-])([\w.%+-]+):([^\s@/:][^\s@]*)@(?=[\w\[(])")
# ADO / ODBC: `Name=value;` pairs, a value braced ({…}, "}}" inside is one "}"), quoted, or
# running to the next ";".
_ADO = re.compile(r"^\s*[A-Za-z][\w ]*=[^;]*;")
_ADO_PAIR = re.compile(
    r"(?P<lead>^|;)(?P<name>\s*[^=;]+?)(?P<eq>\s*=\s*)"
    r"(?P<value>\{(?:[^}]|\}\})*\}|\"(?:[^\"]|\"\")*\"|[^;]*)"
)
# libpq conninfo: `name=value` pairs separated by spaces, a value quoted ('…', \' inside).
_CONNINFO = re.compile(r"^\s*\w+\s*=\s*\S*\s+\w+\s*=")
_CONNINFO_PAIR = re.compile(
    r"(?P<lead>^|\s)(?P<name>\w+)(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|\S*)"
)
# name=value pairs anywhere else (a URL's query, `a=1,token=x`).
_PAIR = re.compile(r"(?P<lead>^|[?&;,\s])(?P<name>[^=&;,?#\s]+)(?P<eq>=)(?P<value>[^&;,#\s]*)")
# "password": "…" in JSON.
_JSON_PAIR = re.compile(r'"(?P<name>[^"\\]{1,100})"(?P<eq>\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)"')
# A header written out: `Authorization: Bearer x`, `Cookie: a=b`, `X-Api-Key: x`.
_HEADER = re.compile(r"^(?P<name>[\w-]+)(?P<colon>\s*:\s*)(?P<value>.+)$", re.S)
_SCHEME = re.compile(r"^(Bearer|Basic|Digest|Token|Bot|Negotiate|NTLM|AWS4-HMAC-SHA256)\s+", re.I)
# A credential after its scheme: at least 8 characters, one of them a digit (so "Basic
# configuration" stays as written).
_BEARER = re.compile(r"\b(Bearer|Basic|Token)(\s+)(?=[\w\-.~+/=:]*\d)[\w\-.~+/=:]{8,}", re.I)
# How deep a value inside a value (next=/reset?token=…) is searched.
_NESTING = 2


def _userinfo(text: str) -> str:
    if "@" not in text:
        return text
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\1:{REDACTED}@", text)
    return _BARE_USERINFO.sub(rf"\1:{REDACTED}@", text)


def _replace_secret_pairs(
    pattern: re.Pattern[str], text: str, extra: Collection[str], qualified: bool
) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        plain = unquote(name).strip() if "%" in name else name.strip()
        if not secret_name(plain, extra, qualified=qualified):
            return match[0]
        whole, offset = match[0], match.start()
        return (
            whole[: match.start("value") - offset] + REDACTED + whole[match.end("value") - offset :]
        )

    return pattern.sub(replace, text)


def redact_text(text: str, extra_names: Collection[str] = ()) -> str:
    """`text` with every secret it holds replaced: URL passwords, secret `name=value` pairs
    (ADO/ODBC and conninfo DSNs, queries, JSON), a secret header's value, bearer credentials
    and provider keys."""
    header = _HEADER.match(text)
    if header is not None and secret_name(header["name"], extra_names, qualified=True):
        scheme = _SCHEME.match(header["value"])
        kept = scheme[0] if scheme and header["name"].lower().endswith("authorization") else ""
        return f"{header['name']}{header['colon']}{kept}{REDACTED}"
    text = _userinfo(text)
    if "=" in text:
        if _ADO.match(text):
            text = _replace_secret_pairs(_ADO_PAIR, text, extra_names, True)
        elif _CONNINFO.match(text):
            text = _replace_secret_pairs(_CONNINFO_PAIR, text, extra_names, True)
        else:
            text = _replace_secret_pairs(_PAIR, text, extra_names, True)
    if '"' in text:
        text = _replace_secret_pairs(_JSON_PAIR, text, extra_names, True)
    text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    return _PROVIDER_KEY.sub(REDACTED, text)


_OPTION = re.compile(r"^(?P<name>-{0,2}[A-Za-z_][\w.\-\[\]]*)=(?P<value>.*)$", re.S)
_FLAG = re.compile(r"^--?[A-Za-z][\w.-]*$")
# mysql's -pSECRET (a number after -p is a port, as in many tools, and stays).
_SHORT_PASSWORD = re.compile(r"^-p(?!\d+$)(?=.)")
_MYSQL = re.compile(r"^(mysql\w*|mariadb[\w-]*)$")
_BASIC_USER = ("-u", "--user", "--proxy-user", "-U")


def redact_argv(argv: Sequence[str], extra: Sequence[re.Pattern[str]] = ()) -> list[str]:
    """The command line with every secret replaced, each argument still one string: the value
    of a secret option (`--password=…`, `--api-key …`, mysql's `-pSECRET`, `TOKEN=…`, curl's
    `-u user:password`), and the secrets inside any argument (see `redact_text`); then
    whatever the `extra` patterns match."""
    out: list[str] = []
    pending = ""  # "secret": the next argument is one; "user": it is user:password
    mysql = False
    for argument in argv:
        text = argument
        mysql = mysql or bool(_MYSQL.match(argument.rpartition("/")[2]))
        if pending == "secret" and not text.startswith("--"):
            text = REDACTED
            pending = ""
        elif pending == "user" and ":" in text:
            text = text.partition(":")[0] + ":" + REDACTED
            pending = ""
        else:
            pending = ""
            option = _OPTION.match(text)
            name = option["name"].lstrip("-") if option is not None else ""
            if (
                option is not None
                and not text.startswith("-")
                and (_ADO.match(text) or _CONNINFO.match(text))
            ):
                text = redact_text(text)  # a DSN that starts with its secret: pair by pair
            elif option is not None and secret_name(name, qualified=True):
                text = f"{option['name']}={REDACTED}"
            elif option is not None and option["name"] in _BASIC_USER and ":" in option["value"]:
                text = f"{option['name']}={option['value'].partition(':')[0]}:{REDACTED}"
            elif mysql and _SHORT_PASSWORD.match(text):
                text = f"-p{REDACTED}"
            elif text in _BASIC_USER:
                pending = "user"
            elif (
                _FLAG.match(text)
                and not text.startswith("--no-")
                and secret_name(text.lstrip("-"), qualified=True)
            ):
                pending = "secret"
            elif option is not None:
                text = f"{option['name']}={redact_text(option['value'])}"
            else:
                text = redact_text(text)
        for pattern in extra:
            text = pattern.sub(REDACTED, text)
        out.append(text)
    return out


def redact_query(query: str, extra_names: Collection[str] = (), _depth: int = 0) -> str:
    """A query string with the values of secret parameters (`token`, `X-Amz-Signature`,
    `user[password]`, `token[]`, percent-encoded or not, any characters in the name) replaced,
    and secrets in a URL or query inside a value (`next=/reset?token=…`); the rest kept byte
    for byte. Linear in the length of `query`."""
    if "=" not in query:
        return query
    pieces = _SEPARATORS.split(query)
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        name, equals, value = piece.partition("=")
        if not equals:
            continue
        plain = unquote_plus(name) if ("%" in name or "+" in name) else name
        if secret_name(plain, extra_names):
            pieces[index] = f"{name}={REDACTED}"
        elif _depth < _NESTING and ("=" in value or "%3d" in value.lower()):
            pieces[index] = f"{name}={_inner(value, extra_names, _depth + 1)}"
    return "".join(pieces)


_SEPARATORS = re.compile(r"([&;])")


def _inner(value: str, extra_names: Collection[str], depth: int) -> str:
    """A value that holds a query of its own (a redirect URL): its secrets replaced; a
    percent-encoded one that holds a secret is replaced whole."""
    head, mark, rest = value.partition("?")
    if not mark:
        head, rest = "", value
    redacted = head + mark + redact_query(rest, extra_names, depth)
    if redacted != value:
        return redacted
    decoded = unquote_plus(value)
    if decoded != value and redact_query(
        decoded.partition("?")[2] or decoded, extra_names, depth
    ) != (decoded.partition("?")[2] or decoded):
        return REDACTED
    return value


def redact_path(path: str, extra_names: Collection[str] = ()) -> str:
    """A path with the values of secret matrix parameters (`/a;token=x/b`) replaced."""
    if ";" not in path:
        return path
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if ";" not in segment:
            continue
        parameters = segment.split(";")
        for at in range(1, len(parameters)):
            name, equals, _ = parameters[at].partition("=")
            plain = unquote(name) if "%" in name else name
            if equals and secret_name(plain, extra_names):
                parameters[at] = f"{name}={REDACTED}"
        segments[index] = ";".join(parameters)
    return "/".join(segments)


def cap(value: str, limit: int = VALUE_LIMIT) -> str:
    """`value` cut to `limit` characters, marked as truncated when cut."""
    if len(value) <= limit:
        return value
    return value[:limit] + TRUNCATED
