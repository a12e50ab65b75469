"""Process-wide runtime support shared by the name server, the broker and the store: rate-limited logging and
supervised background jobs."""
