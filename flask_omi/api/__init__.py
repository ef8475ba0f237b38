"""Acting for a user: OMI's app-facing API. The client (one method per endpoint), its transport
(timeouts, retries, OMI's errors as exceptions) and the shapes of OMI's answers. Framework-neutral."""
