"""ACL 1.0 as Apache RocketMQ 4.9 has it (``aclEnable``, ``plain_acl.yml``), sans-IO: the file's accounts and white
lists (``plain_config``), remote address patterns (``addresses``), the request signature (``signature``), the
resources a request needs (``resources``) and the decision (``validator``)."""
