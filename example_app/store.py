"""The example app's own data, in SQLite: who signed in, display names, notes, and conversations
OMI sent."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

SCHEMA = """
CREATE TABLE IF NOT EXISTS setups (
    uid TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    completed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    uid TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notes (
    uid TEXT NOT NULL,
    text TEXT NOT NULL,
    written_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS received_conversations (
    uid TEXT NOT NULL,
    conversation_id TEXT,
    title TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
"""


class ExampleStore:
    def __init__(self, path: str) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=5)) as db, db:
            yield db

    def complete(self, uid: str, display_name: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO setups (uid, display_name, completed_at) VALUES (?, ?, ?) "
                "ON CONFLICT(uid) DO UPDATE SET display_name = excluded.display_name",
                (uid, display_name, int(time.time())),
            )

    def display_name(self, uid: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT display_name FROM setups WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else str(row[0])

    def is_complete(self, uid: str) -> bool:
        return self.display_name(uid) is not None

    def record_conversation(self, uid: str, conversation_id: str | None, title: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO received_conversations (uid, conversation_id, title, received_at) "
                "VALUES (?, ?, ?, ?)",
                (uid, conversation_id, title, int(time.time())),
            )

    def received_conversations(self, uid: str, limit: int = 10) -> list[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT title FROM received_conversations WHERE uid = ? ORDER BY rowid DESC LIMIT ?",
                (uid, limit),
            ).fetchall()
        return [str(row[0]) for row in rows]

    # -- users and notes ------------------------------------------------------------------------------
    def remember_user(self, uid: str) -> None:
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO users (uid, first_seen) VALUES (?, ?)", (uid, int(time.time())))

    def knows(self, uid: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM users WHERE uid = ?", (uid,)).fetchone() is not None

    def add_note(self, uid: str, text: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO notes (uid, text, written_at) VALUES (?, ?, ?)", (uid, text, int(time.time()))
            )

    def delete_notes(self, uid: str) -> int:
        with self._connect() as db:
            return db.execute("DELETE FROM notes WHERE uid = ?", (uid,)).rowcount

    def notes(self, uid: str, limit: int = 20) -> list[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT text FROM notes WHERE uid = ? ORDER BY rowid DESC LIMIT ?", (uid, limit)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def search_notes(self, uid: str, words: str, limit: int = 5) -> list[str]:
        """Notes of ``uid`` that contain every one of ``words`` (case-insensitive), newest first."""
        wanted = [word.lower() for word in words.split() if word]
        return [note for note in self.notes(uid, limit=200) if all(w in note.lower() for w in wanted)][:limit]
