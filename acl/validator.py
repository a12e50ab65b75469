"""The ACL 1.0 decision for one request (PlainPermissionManager.validate), and the file it reads.

In order, as Apache: a remote address in ``globalWhiteRemoteAddresses`` passes; a request without ``AccessKey``,
or with one the file does not know, is refused; an address in the account's ``whiteRemoteAddress`` passes without
a signature; a wrong or missing signature is refused; a trace-topic send passes; an admin code needs an admin
account; then every resource the request names needs its permission (the resource's own, else the account's
default for topics or groups; an admin without any resource permissions may do everything).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from acl.plain_config import Account, AclConfigError, PlainAclConfig, parse_plain_acl
from acl.resources import ResourceError, needed_resources
from acl.signature import signed_content
from codec.codes import (
    ACL_ACCESS_KEY_FIELD,
    ACL_ADMIN_CODES,
    ACL_SIGNATURE_FIELD,
    RETRY_GROUP_TOPIC_PREFIX,
    TRACE_TOPIC,
    UNIQUE_MSG_QUERY_FLAG,
    AclPerm,
)

log = logging.getLogger("pocketmq.acl")

# Plain ints: IntFlag arithmetic costs microseconds per request.
_DENY, _ANY, _PUB, _SUB = int(AclPerm.DENY), int(AclPerm.ANY), int(AclPerm.PUB), int(AclPerm.SUB)

RELOAD_CHECK_INTERVAL_S = 1.0  # how often the file's modification time is looked at (while requests arrive)


def has_permission(needed: int, owned: int) -> bool:
    """Permission.checkPermission: DENY wins; ANY is PUB or SUB; else the needed bit must be owned."""
    if owned & _DENY:
        return False
    if needed & _ANY:
        return bool(owned & (_PUB | _SUB))
    return bool(needed & owned)


def _printable(resource: str) -> str:
    if resource.startswith(RETRY_GROUP_TOPIC_PREFIX):
        return "group:" + resource[len(RETRY_GROUP_TOPIC_PREFIX) :]
    return "topic:" + resource


def decide(config: PlainAclConfig, code: int, fields: Mapping[str, str], body: bytes, remote_ip: str) -> str | None:
    """None when the request may proceed; otherwise why not, in Apache's words."""
    for pattern in config.global_white:
        if pattern.matches(remote_ip):
            return None
    access_key = fields.get(ACL_ACCESS_KEY_FIELD)
    if access_key is None:
        return "No accessKey is configured"
    account = config.accounts.get(access_key)
    if account is None:
        return f"No acl config for {access_key}"
    if account.white_address.matches(remote_ip):
        return None
    try:
        # Apache reads the resources before it checks the signature; an unreadable heartbeat is refused either way.
        resources = needed_resources(code, fields, body)
    except ResourceError as err:
        return str(err)
    if not _signature_holds(account, fields, body):
        return f"Check signature failed for accessKey={access_key}"
    if resources.get(TRACE_TOPIC) == _PUB:
        return None
    return _check_permissions(account, code, resources)


def _signature_holds(account: Account, fields: Mapping[str, str], body: bytes) -> bool:
    signature = fields.get(ACL_SIGNATURE_FIELD)
    if account.signer.verify(signed_content(fields, body), signature):
        return True
    # The client's hook also signed _UNIQUE_KEY_QUERY, which Apache's broker leaves out (and so refuses).
    return UNIQUE_MSG_QUERY_FLAG in fields and account.signer.verify(
        signed_content(fields, body, as_client=True), signature
    )


def decide_registration(
    config: PlainAclConfig, code: int, fields: Mapping[str, str], body: bytes, remote_ip: str
) -> str | None:
    """pocketmq's name-server check of a broker (un)registration: from an address of a white list (global or an
    account's), or signed by an admin account. Apache 4.9's name server checks nothing."""
    if any(p.matches(remote_ip) for p in config.global_white):
        return None
    if any(a.white_address.matches(remote_ip) for a in config.accounts.values()):
        return None
    account = config.accounts.get(fields.get(ACL_ACCESS_KEY_FIELD) or "")
    if account is not None and account.admin and _signature_holds(account, fields, body):
        return None
    return (
        f"broker registration from {remote_ip} refused: the address is not in the white list "
        "(globalWhiteRemoteAddresses or an account's whiteRemoteAddress) and the request is not signed by an admin "
        "account"
    )


def _check_permissions(account: Account, code: int, resources: dict[str, int]) -> str | None:
    if code in ACL_ADMIN_CODES and not account.admin:
        return f"Need admin permission for request code={code}, but accessKey={account.access_key} is not"
    if not resources or (account.admin and not account.resource_perms):
        return None
    for resource, needed in resources.items():
        owned = account.resource_perms.get(resource)
        if owned is None:
            is_group = resource.startswith(RETRY_GROUP_TOPIC_PREFIX)
            owned = account.default_group_perm if is_group else account.default_topic_perm
        if not has_permission(needed, owned):
            # Apache says "default" whether the default or the resource's own permission refused it.
            return f"No default permission for {_printable(resource)}"
    return None


class PlainAclFile:
    """plain_acl.yml, read at start (an unreadable or invalid file raises AclConfigError: a broker that was asked
    for ACL must not run open) and read again when its modification time changes; a bad edit keeps the last good
    configuration and is logged."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self._stamp = self._stat()
        self.config = self._read()
        self._next_check = clock() + RELOAD_CHECK_INTERVAL_S

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> PlainAclConfig:
        try:
            text = self.path.read_bytes()
        except OSError as err:
            raise AclConfigError(f"{self.path}: cannot read the ACL file: {err.strerror or err}") from None
        config = parse_plain_acl(text, str(self.path))
        for warning in config.warnings:
            log.warning("%s", warning)
        log.info("ACL: %d account(s), %d global white address pattern(s) from %s",
                 len(config.accounts), len(config.global_white), self.path)  # fmt: skip
        return config

    def current(self) -> PlainAclConfig:
        """The configuration, re-read first if the file changed (looked at most once a second)."""
        now = self.clock()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_INTERVAL_S
            stamp = self._stat()
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                try:
                    self.config = self._read()
                except AclConfigError as err:
                    log.error("ACL file changed but is not usable; keeping the previous configuration: %s", err)
        return self.config

    def decide(self, code: int, fields: Mapping[str, str], body: bytes, remote_ip: str) -> str | None:
        return decide(self.current(), code, fields, body, remote_ip)

    def decide_registration(self, code: int, fields: Mapping[str, str], body: bytes, remote_ip: str) -> str | None:
        return decide_registration(self.current(), code, fields, body, remote_ip)
