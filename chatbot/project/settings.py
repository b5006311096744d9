"""Django settings for Switchboard.

Everything comes from the environment, with embedded defaults that need no server:
SQLite under ``var/``, the in-memory channel layer, the model store under ``var/models``.
``DATABASE_URL`` switches to PostgreSQL, ``REDIS_URL`` to channels_redis.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE

from chatbot.core.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("SWITCHBOARD_VAR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-dev-only-key-change-me-for-any-real-deployment"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Pages allowed to embed the chat widget ("*": any site; the customer socket is authorised by
# its conversation token, never by cookies). The agent socket only accepts ALLOWED_HOSTS.
CHAT_WIDGET_ORIGINS = env_list("CHAT_WIDGET_ORIGINS", "*")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "routing",
    "finetune",
    "chatbot",
    "chatbot.learning",
]

MIDDLEWARE = [
    # First, so every line the request logs carries its id (chatbot.core.logs).
    "chatbot.core.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chatbot.project.csp.CachedCSPMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Every page's scripts come from /static/ (no inline script anywhere); inline styles stay allowed,
# the admin, DRF's browsable API and Swagger UI use them. Websockets are same-origin ('self').
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Login throttling (django-axes) for /admin/login/ and /agent/login/: after LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one address, that pair is locked out for the cool-off,
# the right password included. Attempts live in the database; `manage.py axes_reset` unlocks.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "chatbot/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "chatbot.handshakes.request_client_address"
# No start-up banner in every process's log; failed logins and lockouts are still logged.
AXES_VERBOSE = False

ROOT_URLCONF = "chatbot.project.urls"
ASGI_APPLICATION = "chatbot.project.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'switchboard.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process and the worker share one SQLite file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # A file (not :memory:) so live-server tests can share it with a server subprocess;
    # per-process so parallel test runs never collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # The pub/sub layer: one Redis round trip per event instead of ~4 (the core layer's
    # per-channel queues), and group sends pipelined (chatbot.layers); measured in
    # bench/chat_load.py. Events for a socket that is gone are dropped, which is fine: messages
    # live in the database and history reloads on reconnect.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chatbot.layers.PipelinedPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # Deployments (or test runs) sharing one Redis keep their groups apart.
                "prefix": os.environ.get("CHANNELS_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "training"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
if not DEBUG:
    # Production serves what `manage.py collectstatic` wrote (chatbot.project.static_files): hashed names
    # let browsers keep a file for a year; the plain names (the widget's embed URL) stay valid too.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
# Cache-Control max-age (seconds) in production of static files without a hash in their name.
STATIC_MAX_AGE = int(os.environ.get("STATIC_MAX_AGE", "60"))

# Agents who are team members (not staff) log in here; the admin's own form admits staff only.
LOGIN_URL = "/agent/login/"
LOGIN_REDIRECT_URL = "/agent/"

# Request bodies above this are refused with 413 (the import upload has its own limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "chatbot.core.rest.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": ["chatbot.core.rest.LimitedJSONParser"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "chatbot.core.rest.AnonThrottle",
        "chatbot.core.rest.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("THROTTLE_ANON", "30/min"),
        "user": os.environ.get("THROTTLE_USER", "100000/hour"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatbot.core.rest.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "Route support messages to product teams; ingest tickets; train and promote models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from the drf-spectacular-sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Proxies in front of the app servers that append to X-Forwarded-For: REST throttles and the
# chat's handshake limit then count the client's address, not the proxy's.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT or None

SWITCHBOARD = {
    "MODEL_STORE": os.environ.get("MODEL_STORE", str(VAR_DIR / "models")),
    "TRUSTED_PROXY_COUNT": TRUSTED_PROXY_COUNT,
}
if os.environ.get("CHAT_HANDSHAKES_PER_MINUTE"):
    SWITCHBOARD["CHAT_HANDSHAKES_PER_MINUTE"] = int(os.environ["CHAT_HANDSHAKES_PER_MINUTE"])
if os.environ.get("TRAINING_DEVICE"):
    SWITCHBOARD["TRAINING_DEVICE"] = os.environ["TRAINING_DEVICE"]
if os.environ.get("METRICS_TOKEN"):
    SWITCHBOARD["METRICS_TOKEN"] = os.environ["METRICS_TOKEN"]
if os.environ.get("LOGIN_LOG_RETENTION_DAYS"):
    SWITCHBOARD["LOGIN_LOG_RETENTION_DAYS"] = int(os.environ["LOGIN_LOG_RETENTION_DAYS"])
if os.environ.get("BASE_MODEL"):
    SWITCHBOARD["BASE_MODEL"] = os.environ["BASE_MODEL"]
if os.environ.get("AGENT_ACCESS_RECHECK_SECONDS"):
    SWITCHBOARD["AGENT_ACCESS_RECHECK_SECONDS"] = float(os.environ["AGENT_ACCESS_RECHECK_SECONDS"])

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# JSON lines by default (chatbot.core.logs); LOG_FORMAT=text for a human at a terminal.
LOGGING = logging_config(level=os.environ.get("LOG_LEVEL", "INFO"), fmt=os.environ.get("LOG_FORMAT", "json"))
