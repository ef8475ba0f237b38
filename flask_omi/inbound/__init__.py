"""What OMI sends to the app: webhook deliveries (:mod:`.webhooks`) and chat-tool calls
(:mod:`.tools`), with the wire names, request reading, signatures and payload types they share."""
