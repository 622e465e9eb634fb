"""Gemini's resource APIs, for every model group: uploaded files (the Files API),
cached contents (cachedContents) and batch jobs (the Batch API).

    owners.py    who owns a resource (the key's team, else the key) and who sees it
    blobs.py     where file bytes are kept: the Blobs interface and a directory
    s3.py        file bytes in an S3-compatible bucket
    files.py     FileService: resumable uploads, get, list, delete, expiry
    caches.py    CacheService: cached contents (create, get, list, update, delete)
    batches.py   BatchService: batch jobs (create, get, list, cancel, delete)
    runner.py    BatchRunner: runs batches in the background through the pipeline
    resolve.py   Resolved: the pipeline layer that sends a request's uploaded files and
                 cached content to each deployment in the form it takes

`Resources` is what the pipeline builds from the config (`build_resources`): the file,
cache and batch services over the database (the governance store's engine when there is one, else its own
on the same URL) and the configured storage. The database is migrated on first use when
no governance store does it at start-up, so a gateway that never sees a file makes no
database for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from genroute.call import Caller
from genroute.config import Config
from genroute.resources.batches import BatchService
from genroute.resources.blobs import Blobs, LocalBlobs
from genroute.resources.caches import CachedContentBody, CacheService, cache_json
from genroute.resources.files import FileService, NewFile, file_json, parse_file_name
from genroute.resources.owners import Access, access_for
from genroute.resources.resolve import FilePreparer, Resolved, genroute_file_id
from genroute.resources.runner import BatchRunner, Traffic
from genroute.store.batches import BatchRepo
from genroute.store.caches import CacheRepo
from genroute.store.engine import create_engine, migrate
from genroute.store.files import FileRepo
from genroute.tasks import raise_if_cancelled, stop

__all__ = [
    "FILES_DIR",
    "Access",
    "BatchRunner",
    "BatchService",
    "CacheService",
    "CachedContentBody",
    "FilePreparer",
    "FileService",
    "NewFile",
    "Resolved",
    "Resources",
    "Traffic",
    "access_for",
    "build_resources",
    "cache_json",
    "file_json",
    "genroute_file_id",
    "parse_file_name",
]

log = logging.getLogger("genroute.resources")

FILES_DIR = "genroute-files"
SWEEP_INTERVAL = 600.0  # seconds between two sweeps of expired files


class Resources:
    """The resource services of one gateway, and their lifecycle."""

    def __init__(
        self,
        files: FileService,
        caches: CacheService,
        batches: BatchService,
        *,
        url: str,
        engine: AsyncEngine,
        owns_engine: bool,
        is_master: Callable[[str | None], bool],
    ) -> None:
        self.files = files
        self.caches = caches
        self.batches = batches
        self.traffic = Traffic()  # interactive calls in flight, which batches yield to
        self.runner = BatchRunner(batches, self.traffic)
        self.url = url
        self.engine = engine
        self._owns_engine = owns_engine
        self._is_master = is_master
        self._ready = not owns_engine  # the governance store migrates at start-up
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    def access(self, caller: Caller) -> Access:
        """What a caller may see."""
        return access_for(caller, self._is_master)

    async def ready(self) -> None:
        """Make sure the tables exist (migrating on first use without a governance store)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                engine = create_engine(self.url, None)
                try:
                    await migrate(engine, self.url)
                finally:
                    await engine.dispose()
                self._ready = True
                self.start()

    def start(self) -> None:
        """Start sweeping expired files and running batches (with a governance store: now;
        else once the tables are made, on first use)."""
        if self._ready and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="genroute-files-sweep")
            self.runner.start()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                swept = await self.files.sweep()
                caches = await self.caches.sweep()
            except Exception as exc:  # the database or storage is down: next time
                raise_if_cancelled(exc)
                log.warning("sweeping expired files and caches failed: %s", exc)
                continue
            if swept or caches:
                log.info("deleted %d expired files and %d cached contents", swept, caches)

    async def aclose(self) -> None:
        """Stop running batches (those in flight finish first) and sweeping, close storage
        connections (and the engine, if it is ours)."""
        await self.runner.aclose()
        await stop(self._sweeper)
        await self.files.blobs.aclose()
        if self._owns_engine:
            await self.engine.dispose()


def _blobs(config: Config, base: Path) -> Blobs:
    settings = config.files
    if settings.storage == "s3":
        from genroute.resources.s3 import S3Blobs

        assert settings.s3 is not None  # the config refuses storage: s3 without it
        return S3Blobs(settings.s3)
    directory = Path(settings.directory).expanduser() if settings.directory else base / FILES_DIR
    return LocalBlobs(directory)


def build_resources(
    config: Config,
    url: str,
    base: Path,
    *,
    engine: AsyncEngine | None = None,
    is_master: Callable[[str | None], bool] = lambda _: False,
) -> Resources:
    """The resources of a gateway: files over the database at `url` (through `engine`,
    the governance store's, when given) kept in the configured storage (a directory
    defaulting to `genroute-files` under `base`)."""
    own = engine is None
    engine = engine or create_engine(url, config.general_settings.database_timeout)
    files = FileService(FileRepo(engine), _blobs(config, base), config.files)
    caches = CacheService(CacheRepo(engine), config.cached_contents)
    batches = BatchService(BatchRepo(engine), files, config.batches)
    return Resources(
        files, caches, batches, url=url, engine=engine, owns_engine=own, is_master=is_master
    )
