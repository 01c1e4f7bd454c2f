"""Telling a damaged store file from a healthy one, and what to say about it.

A store can be damaged behind tunelab's back: a full disk truncates it, a copy is cut short, a
disk goes bad. DuckDB notices some damage when the file is attached (a bad header checksum) and
some only when a damaged block is read, so both are checked here:

- on open, `check_intact` checks that the file is its headers plus whole blocks (DuckDB
  grows it block by block): a file cut short is refused before DuckDB attaches it, so
  nothing is written to it;
- any DuckDB error whose text says the file is damaged (`is_damage`) becomes `StoreDamaged`,
  wherever it is raised (attach, read, write).

The message says which file, why, and what to do: export what can still be read, the copies
made before migrations, and where the events not yet in it wait.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tunelab.store.errors import StoreDamaged, StoreError

# DuckDB's file layout: a main header, then two database headers (the one with the higher
# iteration is current), each a 4 KiB block that starts with an 8-byte checksum; blocks follow.
_HEADER = 4096
_BLOCKS_START = 3 * _HEADER
_DEFAULT_BLOCK = 262144

# DuckDB's words for a damaged file (its exceptions carry no code to tell these apart).
_SIGNS = ("Corrupt database file", "Could not read enough bytes",
          "not a valid DuckDB database file", "does not match stored checksum")


def is_damage(error: BaseException) -> bool:
    text = str(error)
    return any(sign in text for sign in _SIGNS)


def block_size(path: Path) -> int | None:
    """The block size the file's current database header gives; None when it cannot be told
    (not a DuckDB file: DuckDB itself then judges)."""
    with path.open("rb") as f:
        head = f.read(_BLOCKS_START)
    if len(head) < 12 or head[8:12] != b"DUCK":
        return None
    if len(head) < _BLOCKS_START:
        return _DEFAULT_BLOCK  # cut inside its own headers
    best: tuple[int, int] | None = None
    for offset in (_HEADER, 2 * _HEADER):
        iteration, _meta, _free, _blocks, size = struct.unpack_from("<QqqQQ", head, offset + 8)
        if not 4096 <= size <= 1 << 30 or size & (size - 1):
            size = _DEFAULT_BLOCK  # an older header without the field
        if best is None or iteration > best[0]:
            best = (iteration, size)
    return best[1] if best else None


def reason(error: BaseException) -> str:
    """DuckDB's words for the damage, on one line and short."""
    text = " ".join(str(error).split())
    for prefix in ("IO Error: ", "Error: "):
        text = text.removeprefix(prefix)
    return text if len(text) <= 160 else text[:157] + "…"


def damaged(path: Path, why: str) -> StoreDamaged:
    """The error for a damaged store: which file, why, and what to do."""
    lines = [f"{path} is damaged ({why}). tunelab will not write to it.",
             f"Save what can still be read: tunelab export-store --store {path} FOLDER "
             "(every readable table as Parquet; unreadable tables are named).",
             *what_else(path)]
    return StoreDamaged("\n".join(lines), path=str(path), why=why)


def what_else(path: Path) -> list[str]:
    """After an export: the migration backups, and starting afresh with the waiting events."""
    backups = sorted(p.name for p in path.parent.glob(f"{path.name}.v*.bak*"))
    spool = path.with_name(path.name + ".spool")
    lines = []
    if backups:
        lines.append("Copies made before earlier migrations are next to it: "
                     + ", ".join(backups) + ".")
    lines.append(f"Then move {path.name} aside; the next run starts a new store there"
                 + (f" and takes in the events waiting in {spool.name}/." if spool.is_dir()
                    else "."))
    return lines


def truncation(path: Path) -> str | None:
    """Why the file looks truncated, or None.

    DuckDB grows and shrinks its file by whole blocks (it drops free blocks at the end, so the
    header's block count is an upper bound, not the size). A file that is not its headers plus
    whole blocks was cut: a full disk, a copy cut short. A cut exactly at a block boundary
    passes here and is found when the missing block is read. With a write-ahead log next to it
    a checkpoint was interrupted and the file may end in part of a block: DuckDB replays the
    log, so the file is not judged by its size then.
    """
    if path.with_name(path.name + ".wal").exists():
        return None  # a checkpoint was cut short (a full disk): DuckDB replays the log on open
    try:
        size = path.stat().st_size
        block = block_size(path) if size else None
    except OSError:
        return None  # gone or unreadable: the open that follows says so
    if block is None:
        return None
    if size < _BLOCKS_START or (size - _BLOCKS_START) % block:
        return (f"{size:,} bytes, not its {_BLOCKS_START // 1024} KiB of headers plus whole "
                f"{block // 1024} KiB blocks: truncated, for example by a full disk")
    return None


def foreign(path: Path) -> str | None:
    """What a file that is no DuckDB file at all is instead (a journal, a text, other data), or
    None. A damaged store keeps DuckDB's shape (its size is its headers plus whole blocks) even
    where its first bytes are overwritten: it is not foreign, it is damaged."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return None  # gone or unreadable: the open that follows says so
    if not size or head[8:12] == b"DUCK":
        return None
    shaped = size >= _BLOCKS_START and not (size - _BLOCKS_START) % 4096
    if shaped and b"\0" in head:
        return None  # overwritten in place: DuckDB's checks call it damaged
    if head.startswith(b'{"op_code"'):
        store = path.name.removesuffix(".optuna.journal") + ".duckdb" \
            if path.name.endswith(".optuna.journal") else "the .duckdb file"
        return f"it is the Optuna journal of a sweep; its store is {store} beside it"
    first = head.split(b"\n", 1)[0][:40].decode("utf-8", "replace")
    shown = f"it begins {first!r}" if b"\0" not in head else "it holds other binary data"
    return f"not a DuckDB file: {shown}"


def check_intact(path: Path) -> None:
    """Raises StoreDamaged if the file is truncated, and StoreError if it is no DuckDB file at
    all (`--store /etc/passwd`): checked before every open."""
    other = foreign(path)
    if other:
        raise StoreError(f"{path} is not a tunelab store ({other}). A store is the .duckdb file a "
                         "run writes (./tunelab.duckdb unless --store says otherwise).",
                         "not a tunelab store")
    why = truncation(path)
    if why:
        raise damaged(path, why)
