"""Sign-in: the browser comes back from OMI. The blueprint and its views, pending sign-ins (the
state), who is signed in, the decorator, and confirmed sign-in (codes, their records and budgets,
the confirm page, the chat channel's tool)."""
