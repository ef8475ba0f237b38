"""The example's chat tool: OMI's assistant can search the notes a person keeps in this app."""

from __future__ import annotations

from typing import Annotated

from flask_omi import OmiTools

from .store import ExampleStore


def make_tools(store: ExampleStore) -> OmiTools:
    tools = OmiTools(chat_messages={"enabled": True, "target": "app", "notify": False})

    @tools.tool(requires_sign_in=True, status_message="Searching your notes...")
    def search_notes(
        uid: str, query: Annotated[str, "Words to look for, e.g. 'tea' or 'cello lesson'"]
    ) -> str:
        """Search the notes this person wrote in Example OMI app. Use it when they ask what they
        noted, wrote down or saved there about something."""
        found = store.search_notes(uid, query)
        if not found:
            return f"No notes mention {query!r}."
        return f"{len(found)} note(s) about {query!r}:\n" + "\n".join(f"- {note}" for note in found)

    return tools
