"""plain_acl.yml: accounts and white lists (PlainPermissionManager.load / buildPlainAccessResource).

```yaml
globalWhiteRemoteAddresses: ["10.10.103.*"]
accounts:
  - accessKey: RocketMQ
    secretKey: "12345678"
    whiteRemoteAddress: 192.168.0.*
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms: [topicA=DENY, topicB=PUB|SUB]
    groupPerms: [groupA=DENY, groupB=PUB|SUB]
```

An account whose key is missing or not longer than 6 characters, a resource that is not ``name=PERM`` or a white
address that is not an address makes the whole file invalid (``AclConfigError``), as it stops an Apache broker.
A permission word Apache does not know means DENY there and here (with a warning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acl.addresses import NOTHING, AddressPattern, AddressPatternError, parse_pattern
from acl.signature import Signer
from codec.codes import ACL_MIN_KEY_LENGTH, RETRY_GROUP_TOPIC_PREFIX, AclPerm

_PERM_WORDS = {
    "DENY": int(AclPerm.DENY),
    "PUB": int(AclPerm.PUB),
    "SUB": int(AclPerm.SUB),
    "PUB|SUB": int(AclPerm.PUB | AclPerm.SUB),
    "SUB|PUB": int(AclPerm.PUB | AclPerm.SUB),
}


class AclConfigError(ValueError):
    """The ACL file cannot be used; the message names the file and the problem."""


@dataclass(slots=True)
class Account:
    access_key: str
    secret_key: str
    signer: Signer
    white_address: AddressPattern = NOTHING
    admin: bool = False
    default_topic_perm: int = int(AclPerm.DENY)
    default_group_perm: int = int(AclPerm.DENY)
    # Topic names and "%RETRY%<group>" for groups -> permission bits.
    resource_perms: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class PlainAclConfig:
    global_white: list[AddressPattern] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def first_admin(self) -> Account | None:
        return next((a for a in self.accounts.values() if a.admin), None)


def _text(value: Any) -> str | None:
    """A scalar as Java's JSON conversion turns it into a String (numbers and booleans included)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(f"expected a single value, found {type(value).__name__}")


def _perm(word: Any, where: str, warnings: list[str]) -> int:
    text = _text(word)
    if text is None:
        return int(AclPerm.DENY)
    perm = _PERM_WORDS.get(text.strip())
    if perm is None:
        warnings.append(f"{where}: unknown permission {text!r} means DENY")
        return int(AclPerm.DENY)
    return perm


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AclConfigError(f"{what} must be a list")
    return value


def _resource_perms(items: Any, is_topic: bool, who: str, warnings: list[str]) -> dict[str, int]:
    kind = "topicPerms" if is_topic else "groupPerms"
    perms = {}
    for item in _list(items, f"{who}: {kind}"):
        text = _text(item) or ""
        parts = [p for p in text.split("=") if p]
        if len(parts) != 2:
            raise AclConfigError(f"{who}: {kind} entry {text!r} is not 'name=PERM' (e.g. topicA=SUB)")
        name = parts[0].strip()
        perms[name if is_topic else RETRY_GROUP_TOPIC_PREFIX + name] = _perm(parts[1], f"{who}: {kind}", warnings)
    return perms


def _account(raw: Any, index: int, warnings: list[str]) -> Account:
    if not isinstance(raw, dict):
        raise AclConfigError(f"accounts[{index}] is not a mapping")
    access_key = _text(raw.get("accessKey"))
    secret_key = _text(raw.get("secretKey"))
    if (
        access_key is None
        or secret_key is None
        or len(access_key) <= ACL_MIN_KEY_LENGTH
        or len(secret_key) <= ACL_MIN_KEY_LENGTH
    ):
        raise AclConfigError(
            f"accounts[{index}]: accessKey and secretKey are required and must be longer than {ACL_MIN_KEY_LENGTH} "
            f"characters (accessKey={access_key!r})"
        )
    who = f"account {access_key}"
    admin = _text(raw.get("admin"))
    return Account(
        access_key=access_key,
        secret_key=secret_key,
        signer=Signer(secret_key),
        white_address=parse_pattern(_text(raw.get("whiteRemoteAddress"))),
        admin=admin is not None and admin.strip().lower() == "true",
        default_topic_perm=_perm(raw.get("defaultTopicPerm"), f"{who}: defaultTopicPerm", warnings),
        default_group_perm=_perm(raw.get("defaultGroupPerm"), f"{who}: defaultGroupPerm", warnings),
        resource_perms={
            **_resource_perms(raw.get("groupPerms"), False, who, warnings),
            **_resource_perms(raw.get("topicPerms"), True, who, warnings),
        },
    )


def parse_plain_acl(text: str | bytes, source: str = "plain_acl.yml") -> PlainAclConfig:
    """The configuration in ``text``; raises AclConfigError naming ``source`` and what is wrong."""
    import yaml  # here, not at the top: 10-25 ms of start-up for a broker that has ACL off

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise AclConfigError(f"{source}: not valid YAML: {err}") from None
    except (ValueError, RecursionError) as err:  # undecodable bytes, absurd nesting
        raise AclConfigError(f"{source}: not readable YAML: {err}") from None
    config = PlainAclConfig()
    if data is None:
        config.warnings.append(f"{source}: empty; every request that needs an account is refused")
        return config
    if not isinstance(data, dict):
        raise AclConfigError(f"{source}: the top level must be a mapping (globalWhiteRemoteAddresses, accounts)")
    try:
        for text_pattern in _list(data.get("globalWhiteRemoteAddresses"), "globalWhiteRemoteAddresses"):
            config.global_white.append(parse_pattern(_text(text_pattern)))
        for index, raw in enumerate(_list(data.get("accounts"), "accounts")):
            account = _account(raw, index, config.warnings)
            if account.access_key in config.accounts:
                config.warnings.append(f"{source}: accessKey {account.access_key} repeated; the first one counts")
                continue
            config.accounts[account.access_key] = account
    except (AddressPatternError, TypeError) as err:
        raise AclConfigError(f"{source}: {err}") from None
    except AclConfigError as err:
        raise AclConfigError(f"{source}: {err}") from None
    return config
