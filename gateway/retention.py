"""Retention: old messages are deleted as Apache's CleanCommitLogService deletes commit-log files.

Every ``cleanResourceInterval`` the broker looks whether it is time to delete:

- at an hour listed in ``deleteWhen`` (``"04"``, or ``"01;13"``), messages stored more than ``fileReservedTime``
  hours ago go;
- whenever the store's disk is fuller than ``diskMaxUsedSpaceRatio`` percent, the same, at any hour;
- past ``diskSpaceCleanForciblyRatio`` percent (with ``cleanFileForciblyEnable``), the oldest messages go whatever
  their age, one step per interval, until the disk is below it;
- on request (``DELETE_EXPIRED_COMMITLOG``, ``mqadmin deleteExpiredCommitLog``): the next passes, as Apache's
  manual delete does.

The disk's use counts the store's free pages as free: SQLite reuses them for the next messages, so the database
file stops growing rather than shrinking (``docs/retention.md``). A pass deletes in steps of ``STEP_BYTES``, so
the event loop (which also commits appends) is never held for long.
"""

from __future__ import annotations

import datetime
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from gateway.clock import Clock
from gateway.config import BrokerConfig
from store.api import Expired, MessageStore

log = logging.getLogger("pocketmq.retention")

STEP_BYTES = 8 * 1024 * 1024  # per transaction: about 30 chunks, a few ms
FORCED_STEP_BYTES = 64 * 1024 * 1024  # per pass when deleting regardless of age (Apache: deleteFileBatchMax files)
MANUAL_PASSES = 20  # DefaultMessageStore.MAX_MANUAL_DELETE_FILE_TIMES
HOUR_MS = 3_600_000

DiskUsage = Callable[[str], tuple[int, int, int]]  # (total, used, free) bytes, as shutil.disk_usage


def is_time_to_delete(delete_when: str, hour: int) -> bool:
    """Whether ``hour`` (0-23) is one of ``deleteWhen``'s ``;``-separated hours (UtilAll.isItTimeToDo)."""
    for part in delete_when.split(";"):
        part = part.strip()
        if part.isdigit() and int(part) == hour:
            return True
    return False


@dataclass(slots=True)
class PassResult:
    reason: str  # why it ran: "time", "disk", "forced", "manual" (empty when it did not)
    expired: Expired


class Retention:
    def __init__(
        self, store: MessageStore, config: BrokerConfig, clock: Clock, disk_usage: DiskUsage = shutil.disk_usage
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.disk_usage = disk_usage
        self.manual_passes = 0
        self.deleted_messages = 0  # since start, for /metrics and the console
        self.deleted_bytes = 0

    def delete_manually(self) -> None:
        """DELETE_EXPIRED_COMMITLOG: the next passes delete expired messages whatever the hour."""
        self.manual_passes = MANUAL_PASSES

    def disk_ratio(self) -> float:
        """The store's disk partition in use (0.0 - 1.0), the store's reusable free pages counted as free."""
        total, used, _free = self.disk_usage(str(self.config.data_dir))
        if total <= 0:
            return 0.0
        _size, reusable = self.store.space()
        return max(used - reusable, 0) / total

    def _hour(self) -> int:
        return datetime.datetime.fromtimestamp(self.clock.now_ms() / 1000).hour

    async def run(self) -> None:
        while True:
            await anyio.sleep(max(self.config.clean_resource_interval_ms, 100) / 1000)
            await self.run_once()

    async def run_once(self) -> PassResult:
        """One pass: decide whether to delete (and how), then delete in steps."""
        cfg = self.config
        ratio = self.disk_ratio()
        forced = cfg.clean_file_forcibly_enable and ratio > min(cfg.disk_space_clean_forcibly_ratio, 85) / 100
        if forced:
            reason = "forced"
        elif is_time_to_delete(cfg.delete_when, self._hour()):
            reason = "time"
        elif ratio > min(max(cfg.disk_max_used_space_ratio, 10), 95) / 100:
            reason = "disk"
        elif self.manual_passes > 0:
            reason = "manual"
        else:
            return PassResult("", Expired())
        if self.manual_passes > 0:
            self.manual_passes -= 1
        stored_before = self.clock.now_ms() - int(cfg.file_reserved_time_h * HOUR_MS)
        total = Expired()
        budget = FORCED_STEP_BYTES
        while True:
            step = await self.store.expire(stored_before, STEP_BYTES, regardless_of_age=forced)
            total.chunks += step.chunks
            total.messages += step.messages
            total.bytes += step.bytes
            budget -= step.bytes
            if not step.more or (forced and budget <= 0):
                break
            await anyio.lowlevel.checkpoint()  # let appends and pulls in between steps
        total.more = forced and budget <= 0
        self.deleted_messages += total.messages
        self.deleted_bytes += total.bytes
        if total.messages:
            log.info(
                "retention (%s, disk %.0f%%): deleted %d messages (%.1f MiB) stored before %s",
                reason, ratio * 100, total.messages, total.bytes / 1048576,
                datetime.datetime.fromtimestamp(stored_before / 1000).isoformat(timespec="seconds"),
            )  # fmt: skip
        elif reason in ("disk", "forced"):
            log.warning("the disk is %.0f%% full, but no message could be deleted", ratio * 100)
        return PassResult(reason, total)
