"""An async outbound HTTP client that runs at a platform's rate limit with no 429s.

Every adapter sends every request through an :class:`HttpClient`. Each request
names the limiter keys it consumes (``("bot", bot_id)``, ``("chat", chat_id)``);
a :class:`Governor` sends it at the first moment every one of those buckets
admits it, evenly spaced, higher :class:`Priority` first. A :class:`Policy`
reads the platform's answers: a 429 pauses exactly what it covers and the
request goes again; 401 stops the client; 403/404 mark one target unreachable;
network errors and 5xx are retried a bounded number of times. Tokens never
appear in a log line, an error or a repr. See ``docs/http.md``.
"""

from communitykit.http._client import (
    CircuitBreaker,
    ClientOptions,
    HttpClient,
    Response,
    discord_client,
    telegram_client,
    wecom_client,
)
from communitykit.http._errors import (
    AuthFailed,
    ChatMigrated,
    CircuitOpen,
    ErrorFields,
    HttpError,
    RequestFailed,
    TargetUnreachable,
    UnknownScope,
)
from communitykit.http._governor import Governor, Lease
from communitykit.http._limits import (
    DISCORD,
    GLOBAL,
    TELEGRAM,
    WECOM,
    GlobalScope,
    Key,
    Limits,
    Priority,
    RateLimit,
    discord_keys,
    telegram_bot_id,
    telegram_keys,
)
from communitykit.http._policy import (
    Attempt,
    DiscordPolicy,
    GenericPolicy,
    Outcome,
    Policy,
    Routed,
    TelegramPolicy,
    Verdict,
    WeComPolicy,
    parse_json,
    retry_after_header,
)
from communitykit.http._redact import (
    Redactor,
    install_log_filter,
    redact_processor,
    redact_text,
)

__all__ = [
    "DISCORD",
    "GLOBAL",
    "TELEGRAM",
    "WECOM",
    "Attempt",
    "AuthFailed",
    "ChatMigrated",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientOptions",
    "DiscordPolicy",
    "ErrorFields",
    "GenericPolicy",
    "GlobalScope",
    "Governor",
    "HttpClient",
    "HttpError",
    "Key",
    "Lease",
    "Limits",
    "Outcome",
    "Policy",
    "Priority",
    "RateLimit",
    "Redactor",
    "RequestFailed",
    "Response",
    "Routed",
    "TargetUnreachable",
    "TelegramPolicy",
    "UnknownScope",
    "Verdict",
    "WeComPolicy",
    "discord_client",
    "discord_keys",
    "install_log_filter",
    "parse_json",
    "redact_processor",
    "redact_text",
    "retry_after_header",
    "telegram_bot_id",
    "telegram_client",
    "telegram_keys",
    "wecom_client",
]
