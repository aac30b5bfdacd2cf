"""What `warroom run` checks before it touches anything: the database can be reached and written, and the
HTTP listener can be opened. Each problem is one SettingsError naming the variable and what to do."""

from __future__ import annotations

import asyncio
import errno
import socket
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.settings import Settings, SettingsError
from storage.db import inbox_url

CONNECT_SECONDS = 10

SQLITE_EXAMPLE = "sqlite+aiosqlite:///warroom.db (relative) or sqlite+aiosqlite:////var/lib/warroom/warroom.db"


async def check_before_start(settings: Settings) -> None:
    """Raise SettingsError for the first setting `warroom run` cannot work with."""
    check_listener(settings.host, settings.port)
    await check_database(settings.database_url)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise SettingsError(f"WARROOM_DATABASE_URL is malformed ({exc}): e.g. {SQLITE_EXAMPLE}") from None


async def check_database(url: str) -> None:
    """The database answers and (SQLite) its directory can be written."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        check_sqlite(parsed)
        return
    shown = parsed.render_as_string(hide_password=True)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    if not parsed.database:
        raise SettingsError(f"WARROOM_DATABASE_URL names no database ({shown}): e.g. postgresql+asyncpg://USER@HOST/DB")
    engine = create_async_engine(parsed)
    try:
        async with asyncio.timeout(CONNECT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except socket.gaierror:
        raise SettingsError(
            f"WARROOM_DATABASE_URL: cannot resolve the host {parsed.host!r} ({shown}): check its spelling"
        ) from None
    except TimeoutError:
        raise SettingsError(
            f"WARROOM_DATABASE_URL: PostgreSQL at {where} did not answer within {CONNECT_SECONDS}s ({shown})"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"WARROOM_DATABASE_URL: cannot connect to PostgreSQL at {where} ({exc.strerror or exc}): "
            f"is it running, and is this the right host and port? ({shown})"
        ) from None
    except DBAPIError as exc:
        reason = str(exc.orig).splitlines()[0].split(": ", 1)[-1] if exc.orig is not None else str(exc)
        raise SettingsError(f"WARROOM_DATABASE_URL: PostgreSQL at {where} refused: {reason} ({shown})") from None
    finally:
        await engine.dispose()


def check_sqlite(url: URL) -> None:
    """A file database whose directory exists and can be written (SQLite adds its journal files there)."""
    database = url.database or ""
    if url.host:
        raise SettingsError(
            f"WARROOM_DATABASE_URL is malformed: {url.host!r} reads as a host; SQLite needs three slashes, "
            f"e.g. {SQLITE_EXAMPLE}"
        )
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        raise SettingsError(
            "WARROOM_DATABASE_URL points to an in-memory SQLite database, which loses every release at exit: "
            f"give a file, e.g. {SQLITE_EXAMPLE}"
        )
    path = Path(database.removeprefix("file:")).expanduser()
    directory = path.parent.resolve()
    if not directory.is_dir():
        raise SettingsError(
            f"WARROOM_DATABASE_URL: the directory {directory} does not exist: create it or choose another path"
        )
    if path.is_dir():
        raise SettingsError(f"WARROOM_DATABASE_URL: {path} is a directory: name a file in it, e.g. {path}/warroom.db")
    inbox = Path(make_url(inbox_url(url.render_as_string(hide_password=False))).database or "").expanduser()
    if inbox.is_dir():
        raise SettingsError(
            f"WARROOM_DATABASE_URL: {inbox}, where the request inbox is kept beside the database, is a directory: "
            "move it away or choose another database path"
        )
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
        for file in (path, inbox):
            if file.exists():
                with file.open("ab"):
                    pass
    except OSError as exc:
        raise SettingsError(
            f"WARROOM_DATABASE_URL: cannot write in {directory} ({exc.strerror or exc}): "
            "SQLite needs to write the database, the request inbox beside it and their journals"
        ) from None


def check_listener(host: str, port: int) -> None:
    """WARROOM_HOST is an address of this machine and WARROOM_PORT is free on it."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise SettingsError(
            f"WARROOM_HOST is invalid: cannot resolve {host!r} ({getattr(exc, 'strerror', None) or exc}); "
            "use an address of this machine such as 0.0.0.0 or 127.0.0.1"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener itself does
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise SettingsError(
                        f"WARROOM_PORT {port} is already in use on {host}: stop what listens there or choose another"
                    ) from None
                raise SettingsError(
                    f"WARROOM_HOST {host!r} cannot be listened on ({exc.strerror or exc}): "
                    "use an address of this machine such as 0.0.0.0 or 127.0.0.1"
                ) from None
