"""Files camgate writes from footage: private modes, hidden partial names, clear write errors.

Every clip, HLS segment and playlist, snapshot and report camgate writes goes through here:

- **Modes.** Files are created ``0600`` and folders camgate creates ``0700`` (a folder that
  already exists is left as it is; the files camgate puts in it are still ``0600``). An agency
  that wants others to read them sets ``CAMGATE_FILE_MODE`` (octal, e.g. ``0640``): files get
  that mode, new folders the same with ``x`` where there is ``r`` (``0750``). The mode is set
  on the open descriptor (``fchmod``) before the first byte, whatever the process umask — which
  is process-wide, so camgate never changes it. FFmpeg never creates a file itself: the muxers
  get file objects opened here (for HLS through PyAV's ``io_open``).
- **Partial names.** An export is written as ``.NAME.partial`` beside its final name and moved
  to the final name (one ``rename``) only when it is complete; the writer holds an exclusive
  ``flock`` on the partial file or folder until then, so a partial whose lock is free was left
  by a process that died (:func:`abandoned`).
- **Descriptors, not names.** The partial file or folder is opened once (``O_NOFOLLOW``, a
  folder ``O_DIRECTORY``) and its descriptor kept: every byte is written, every file of a
  folder created (``O_CREAT | O_EXCL | O_NOFOLLOW``, relative to the folder's descriptor) and
  every hash taken through it. Before the rename the partial name must still be that file or
  folder (``lstat`` of the name against ``fstat`` of the descriptor: same inode, not a
  symlink), else :class:`~camgate.errors.ExportError` and what camgate wrote is removed
  through the descriptor. So someone who can write the output folder and renames the partial
  away, or puts a symlink in its place, gets neither camgate's footage nor a hash of theirs.
- **Write errors** (a full disk, a file-size limit) become :class:`~camgate.errors.ExportError`
  naming the file and the cause (``no space left on device``).
- **Names from ids** (:func:`safe_name`, :func:`inside`): a camera, grant or incident id never
  leaves the folder it is joined to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from camgate.errors import ConfigError, ExportError, ValidationError

__all__ = [
    "FILE_MODE_ENV",
    "Folder",
    "PartialOutput",
    "PrivateFile",
    "abandoned",
    "check_folder",
    "dir_mode",
    "export_error",
    "file_mode",
    "inside",
    "make_dirs",
    "open_private",
    "partial_name",
    "remove_tree",
    "safe_name",
    "sha256_fd",
    "sha256_path",
    "write_private",
]

#: The environment variable that sets the mode of the files camgate writes (octal, e.g. 0640).
FILE_MODE_ENV = "CAMGATE_FILE_MODE"
_DEFAULT_MODE = 0o600
#: A plain name: used as it is. Not ending in "." either: "ID-" + "0." + ".jpg" would hold "..".
_SAFE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-])?$")
#: Opening a folder camgate writes into: never through a symlink at its name.
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Opening a file or folder to read or hash it: never through a symlink, never blocking on a FIFO.
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def file_mode() -> int:
    """The mode of the files camgate writes: ``CAMGATE_FILE_MODE`` (octal) or ``0600``.

    The owner must be able to read and write (``0600`` at least); no execute bit, nothing
    beyond ``0666``. Raises ConfigError otherwise.
    """
    text = os.environ.get(FILE_MODE_ENV, "").strip()
    if not text:
        return _DEFAULT_MODE
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigError(f"{FILE_MODE_ENV}={text!r}: an octal mode such as 0600 or 0640") from None
    if mode & ~0o666 or mode & 0o600 != 0o600:
        raise ConfigError(
            f"{FILE_MODE_ENV}={text!r}: owner read and write, no execute bit (0600 ... 0666)"
        )
    return mode


def dir_mode(mode: int | None = None) -> int:
    """The mode of the folders camgate creates: the file mode with ``x`` where there is ``r``."""
    mode = file_mode() if mode is None else mode
    return mode | ((mode & 0o444) >> 2)


def export_error(path: str | Path, exc: OSError) -> ExportError:
    """The ExportError for a failed write of ``path``: the file and the cause, in words."""
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large (a file-size limit)",
    }
    code = exc.errno or 0
    reason = reasons.get(code) or (os.strerror(code).lower() if code else str(exc))
    return ExportError(f"cannot write {path}: {reason}; nothing was exported")


def make_dirs(path: str | Path) -> Path:
    """Create ``path`` and its missing parents with :func:`dir_mode`; existing ones are left
    as they are (their mode is the user's choice). Returns the path."""
    target = Path(path)
    missing: list[Path] = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    mode = dir_mode()
    try:
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, mode)
                fd = os.open(folder, _OPEN_DIR)
                try:
                    os.fchmod(fd, mode)  # the umask may have taken bits away
                finally:
                    os.close(fd)
    except OSError as exc:
        raise export_error(target, exc) from None
    return target


class PrivateFile:
    """A raw, unbuffered file opened by :func:`open_private`, for a muxer to write into.

    ``write`` writes every byte (looping over short writes) or raises the OSError; the first
    error is kept in ``error`` so a caller can find one that a library swallowed. After an
    error the file is doomed: later writes are dropped quietly (the caller raises ``error``),
    so a muxer finishing its trailer does not raise the same error again mid-cleanup.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd
        self.error: OSError | None = None
        self.written = 0

    def _fd(self) -> int:
        if self.fd is None:
            raise ValueError(f"{self.path.name} is closed")
        return self.fd

    def write(self, data: Any) -> int:
        """Write all of ``data``; return its length."""
        view = memoryview(data).cast("B")
        if self.error is not None:
            return len(view)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd(), view[done:])
        except OSError as exc:
            self.error = self.error or exc
            raise
        self.written += done
        return done

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (a muxer re-reading what it wrote)."""
        return os.read(self._fd(), size if size >= 0 else 1 << 20)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the file position; returns it."""
        return os.lseek(self._fd(), offset, whence)

    def tell(self) -> int:
        """The file position."""
        return os.lseek(self._fd(), 0, os.SEEK_CUR)

    def flush(self) -> None:
        """Nothing is buffered here."""

    def close(self) -> None:
        """Close (idempotent)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def reader(self) -> _Reader:
        """A read-only view of this same file with its own position (a muxer re-reading what
        it wrote, e.g. MP4's fast start), never re-opened by name. Closing it leaves this
        file open."""
        return _Reader(self)


class _Reader:
    """Reads a :class:`PrivateFile` through its descriptor (``pread``), at its own position."""

    def __init__(self, file: PrivateFile) -> None:
        self.file = file
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self.file._fd(), size if size >= 0 else 1 << 20, self.pos)
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos}.get(whence)
        if base is None:
            base = os.fstat(self.file._fd()).st_size
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        """Nothing to close: the file stays open."""


def _private_fd(name: str | Path, flags: int, where: Path, dir_fd: int | None = None) -> int:
    """Open ``name`` for writing with :func:`file_mode` set on the descriptor before any byte;
    a symlink is refused, and so is anything but a regular file. ExportError naming ``where``."""
    mode = file_mode()
    flags |= os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise export_error(where, exc) from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            os.fchmod(fd, mode)
    except OSError as exc:
        os.close(fd)
        raise export_error(where, exc) from None
    if not regular:
        os.close(fd)
        raise ExportError(f"cannot write {where}: not a regular file; nothing was exported")
    return fd


def open_private(path: str | Path, *, truncate: bool = True) -> PrivateFile:
    """Open ``path`` for writing (created if missing) with :func:`file_mode`, set on the
    descriptor before any byte is written; a symlink is refused. ExportError when it cannot."""
    target = Path(path)
    return PrivateFile(target, _private_fd(target, os.O_CREAT | (os.O_TRUNC * truncate), target))


def partial_name(final: str | Path) -> Path:
    """Where an export to ``final`` is written until it is complete: ``.NAME.partial`` beside
    it (hidden, and no player takes it for a clip)."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial")


def write_private(path: str | Path, data: bytes, *, replace: bool = False) -> None:
    """Write ``data`` to the file ``path`` (:func:`file_mode`): under its partial name
    (:class:`PartialOutput`), synced, then renamed, so a reader never sees half a file.
    ExportError on a write error (the partial is removed); ValidationError when ``path``
    exists, unless ``replace``."""
    final = Path(path)
    if not replace and (final.exists() or final.is_symlink()):
        raise ValidationError(f"{final} exists: camgate does not overwrite it")
    remove_tree(partial_name(final))  # a crash's leftover: nothing of it is kept
    out = PartialOutput(final, replace=replace)
    try:
        out.write(data)
        out.commit()
    except BaseException:
        out.discard()
        raise


def remove_tree(path: str | Path) -> None:
    """Remove a file or a folder (not following a symlink); missing is fine."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def abandoned(path: str | Path) -> bool:
    """True when no process is writing ``path`` (a partial export): its writer's exclusive
    ``flock`` is free, or the path is gone. The kernel frees the lock when the writer dies."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing releases a lock taken here
    return True


def safe_name(ident: str) -> str:
    """A file-name part for an id: the id itself when it is a plain name (letters, digits,
    ``_ . -``, not starting or ending with ``.``, ≤ 64), else a slug of it and a short hash of the
    whole id, so it never holds ``/``, ``..`` or a leading ``/`` and two ids never share it."""
    if _SAFE.match(ident) and ".." not in ident:
        return ident
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ident).strip("-_")[:40] or "id"
    return f"{slug}-{hashlib.sha256(ident.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def inside(folder: str | Path, name: str) -> Path:
    """``folder / name``, after checking that it resolves to a direct child of ``folder``
    (ValidationError otherwise)."""
    base = Path(folder)
    target = base / name
    try:
        ok = "\0" not in name and Path(name).name == name not in ("", ".", "..")
        ok = ok and target.resolve().parent == base.resolve()
    except (OSError, ValueError):  # a name the filesystem cannot hold
        ok = False
    if not ok:
        raise ValidationError(f"{name!r} would leave the folder {base}")
    return target


def sha256_fd(fd: int) -> tuple[str, int]:
    """SHA-256 and size of an open file, or of an open folder (over its files' relative names
    and hashes, sorted, so a changed, added or removed file changes it). Read through the
    descriptor (``pread``, its position untouched); inside a folder every entry is opened
    relative to it, never through a symlink (symlinks and other non-files are left out)."""
    info = os.fstat(fd)
    if not stat.S_ISDIR(info.st_mode):
        digest, at = hashlib.sha256(), 0
        while block := os.pread(fd, 1 << 20, at):
            digest.update(block)
            at += len(block)
        return digest.hexdigest(), at
    found: list[tuple[tuple[str, ...], str, int]] = []
    _walk(fd, (), found)
    digest, size = hashlib.sha256(), 0
    for parts, sha, length in sorted(found):
        digest.update(f"{'/'.join(parts)}\0{sha}\n".encode())
        size += length
    return digest.hexdigest(), size


def _walk(fd: int, prefix: tuple[str, ...], found: list[tuple[tuple[str, ...], str, int]]) -> None:
    for name in os.listdir(fd):
        try:
            child = os.open(name, _OPEN_READ, dir_fd=fd)
        except OSError:
            continue  # a symlink (ELOOP), or gone meanwhile
        try:
            mode = os.fstat(child).st_mode
            if stat.S_ISDIR(mode):
                _walk(child, (*prefix, name), found)
            elif stat.S_ISREG(mode):
                found.append(((*prefix, name), *sha256_fd(child)))
        finally:
            os.close(child)


def sha256_path(path: str | Path) -> tuple[str, int]:
    """:func:`sha256_fd` of the file or folder at ``path``, opened without following a symlink
    there (OSError ``ELOOP`` if it is one)."""
    fd = os.open(path, _OPEN_READ)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def _clear(fd: int) -> None:
    """Remove everything in the open folder ``fd``, relative to it, never through a symlink."""
    for name in os.listdir(fd):
        try:
            os.unlink(name, dir_fd=fd)
        except IsADirectoryError:
            child = os.open(name, _OPEN_DIR, dir_fd=fd)
            try:
                _clear(child)
            finally:
                os.close(child)
            os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            pass


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Folder:
    """A folder camgate writes into, held open by its descriptor (``O_DIRECTORY |
    O_NOFOLLOW``): files are created, re-read and hashed relative to it, so renaming the
    folder or putting a symlink at its name cannot send a byte anywhere else. Files are
    created ``O_CREAT | O_EXCL | O_NOFOLLOW`` with :func:`file_mode`; a file already there
    (an HLS playlist rewritten, a leftover) is unlinked first — never followed, never written
    into, so a hard link planted there gets nothing."""

    def __init__(self, path: str | Path, fd: int) -> None:
        self.path = Path(path)
        self.fd: int | None = fd

    @classmethod
    def open(cls, path: str | Path) -> Folder:
        """Open the folder ``path`` (ExportError when it cannot: missing, a symlink...)."""
        try:
            return cls(path, os.open(path, _OPEN_DIR))
        except OSError as exc:
            raise export_error(path, exc) from None

    def _fd(self) -> int:
        if self.fd is None:
            raise ValueError(f"{self.path} is closed")
        return self.fd

    def _name(self, name: str) -> str:
        if "/" in name or "\0" in name or name in ("", ".", ".."):
            raise ValidationError(f"{name!r} is not a file name in {self.path}")
        return name

    def create(self, name: str) -> PrivateFile:
        """A private file ``name`` in this folder, opened for writing (see the class)."""
        name, where = self._name(name), self.path / name
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(name, dir_fd=self._fd())
        return PrivateFile(where, _private_fd(name, os.O_CREAT | os.O_EXCL, where, self._fd()))

    def reopen(self, name: str) -> PrivateFile:
        """The file ``name`` of this folder, opened to read (not through a symlink)."""
        name = self._name(name)
        return PrivateFile(self.path / name, os.open(name, _OPEN_READ, dir_fd=self._fd()))

    def hashes(self) -> dict[str, tuple[str, int]]:
        """SHA-256 and size of each file directly in this folder, by name, through descriptors."""
        found: list[tuple[tuple[str, ...], str, int]] = []
        _walk(self._fd(), (), found)
        return {parts[0]: (sha, size) for parts, sha, size in found if len(parts) == 1}

    def size(self) -> int:
        """Bytes the files in this folder hold."""
        return sha256_fd(self._fd())[1]

    def sync(self) -> None:
        """fsync every file in this folder, and the folder."""
        fd = self._fd()
        for name in os.listdir(fd):
            with contextlib.suppress(OSError):
                child = os.open(name, _OPEN_READ, dir_fd=fd)
                try:
                    os.fsync(child)
                finally:
                    os.close(child)
        os.fsync(fd)

    def clear(self) -> None:
        """Remove everything in this folder, through its descriptor."""
        _clear(self._fd())

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class PartialOutput:
    """An export to ``final`` (a file, or a folder with ``directory=True``) in progress.

    Creating it creates the partial file or folder (:func:`partial_name`, private mode),
    keeps it open (the descriptor, not the name, is what is written and hashed: :meth:`sink`,
    :attr:`folder`, :meth:`hashes`) and takes an exclusive ``flock`` on it, held until
    :meth:`commit` or :meth:`discard`. :meth:`commit` moves it to ``final`` in one ``rename``,
    after checking that the partial name is still this file or folder (ExportError "... was
    replaced ..." otherwise; :meth:`discard` then removes what camgate wrote, through the
    descriptor). Refuses (ValidationError) when ``final`` exists — unless ``replace``, then a
    file (or an empty folder) there is replaced by the rename, atomically — or when a partial
    of the same name is there (another writer, or a crash's leftover that ``camgate retention
    run`` removes).
    """

    def __init__(
        self, final: str | Path, *, directory: bool = False, replace: bool = False
    ) -> None:
        self.final = Path(final)
        self.partial = partial_name(self.final)
        self.directory = directory
        self.replace = replace
        self.folder: Folder | None = None
        self._check_final()
        if self.partial.exists() or self.partial.is_symlink():
            raise ValidationError(f"{self.partial} exists: another export is under way")
        check_folder(make_dirs(self.final.parent))
        try:
            if directory:
                self.folder = _new_folder(self.partial)
                fd = self.folder._fd()
            else:
                fd = _private_fd(self.partial, os.O_CREAT | os.O_EXCL, self.partial)
        except FileExistsError:
            raise ValidationError(f"{self.partial} exists: another export is under way") from None
        except OSError as exc:
            raise export_error(self.partial, exc) from None
        self._fd: int | None = fd
        self._id = os.fstat(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _check_final(self) -> None:
        final = self.final
        if not (final.exists() or final.is_symlink()):
            return
        if not self.replace:
            raise ValidationError(f"{final} exists: camgate does not overwrite it")
        if final.is_dir() != self.directory or (self.directory and any(final.iterdir())):
            raise ValidationError(f"{final} exists and cannot be replaced by this export")

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"the export to {self.final} is over")
        return self._fd

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if self.folder is not None:
            self.folder.close()  # the same descriptor
        elif fd is not None:
            os.close(fd)

    def sink(self) -> PrivateFile:
        """The partial file, for writing (its own descriptor to the same open file: closing
        it leaves the export open). For a file export only."""
        if self.directory:
            raise ValueError("a folder export has no single file: write into .folder")
        return PrivateFile(self.partial, os.dup(self._open_fd()))

    def write(self, data: bytes) -> None:
        """Write ``data`` as the whole file, synced (ExportError naming the final file)."""
        sink = self.sink()
        try:
            sink.write(data)
            os.fsync(sink._fd())
        except OSError as exc:
            raise export_error(self.final, exc) from None
        finally:
            sink.close()

    def verify(self, name: Path | None = None) -> None:
        """ExportError unless ``name`` (the partial name by default) is still the file or
        folder this export opened: same inode, not a symlink. Nothing is removed here."""
        name = name or self.partial
        try:
            found: os.stat_result | None = os.lstat(name)
        except OSError:
            found = None
        if found is not None and _same(found, self._id):
            return
        what = "removed"
        if found is not None:
            what = "a symlink" if stat.S_ISLNK(found.st_mode) else "something else"
        raise ExportError(
            f"cannot export to {self.final}: {name} was replaced ({what}) while camgate wrote "
            f"it — can someone else write {name.parent}? nothing was exported"
        )

    def hashes(self) -> dict[str, tuple[str, int]]:
        """SHA-256 and size of what was written, through the descriptor, after :meth:`verify`:
        for a folder each file in it by name, for a file ``{final name: ...}``."""
        self.verify()
        if self.folder is not None:
            return self.folder.hashes()
        return {self.final.name: sha256_fd(self._open_fd())}

    def digest(self) -> tuple[str, int]:
        """SHA-256 and size of the whole output (:func:`sha256_fd`), after :meth:`verify`."""
        self.verify()
        return sha256_fd(self._open_fd())

    def size(self) -> int:
        """Bytes written so far (0 once the export is over)."""
        if self._fd is None:
            return 0
        return sha256_fd(self._fd)[1] if self.directory else os.fstat(self._fd).st_size

    def commit(self) -> Path:
        """Sync and move the partial output to its final name; returns the final path.

        ExportError when the partial name is no longer this export (see :meth:`verify`), or
        when, after the rename, the final name is not it (a swap in between): a symlink put
        there is removed; call :meth:`discard` to remove what camgate wrote."""
        fd = self._open_fd()
        try:
            if self.folder is not None:
                self.folder.sync()
            os.fsync(fd)
            self._check_final()
            self.verify()
            os.rename(self.partial, self.final)
            _fsync(self.final.parent)
        except OSError as exc:
            raise export_error(self.final, exc) from None
        try:
            self.verify(self.final)
        except ExportError:
            if self.final.is_symlink():
                self.final.unlink()
            raise
        self._release()
        return self.final

    def discard(self) -> None:
        """Remove what was written — through the descriptor, wherever the partial was moved —
        and the partial name if it is still this export's (a symlink there is removed, never
        followed); release the lock. Idempotent."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if self.folder is not None:
                    self.folder.clear()
                else:
                    os.ftruncate(self._fd, 0)
            try:
                self.verify()
                mine = True
            except ExportError:
                mine = self.partial.is_symlink()
            if mine:
                remove_tree(self.partial)
        self._release()


def check_folder(path: str | Path) -> None:
    """ExportError unless only camgate's user (or root) can rename or replace what camgate
    writes in the folder ``path``: that folder and every folder above it (as written and as
    resolved) is owned by this user or root and is not writable by group or others, unless
    it has the sticky bit (like ``/tmp``). Otherwise another user could move finished
    footage out of retention's reach, or swap a partial export."""
    folder = Path(os.path.abspath(path))
    resolved = folder.resolve()
    chain = {folder, *folder.parents, resolved, *resolved.parents}
    for each in sorted(chain):
        try:
            info = os.stat(each)
        except OSError as exc:
            raise export_error(each, exc) from None
        mode = info.st_mode
        if info.st_uid not in (0, os.geteuid()):
            why = f"is owned by another user (uid {info.st_uid})"
        elif mode & 0o022 and not mode & stat.S_ISVTX:
            why = f"can be written by others (mode {stat.S_IMODE(mode):04o}) without the sticky bit"
        else:
            continue
        raise ExportError(
            f"cannot export into {folder}: {each} {why}, so another user could move or replace "
            "camgate's footage there; use a folder only you can write (or chmod +t it)"
        )


def _new_folder(path: Path) -> Folder:
    """Create the folder ``path`` (:func:`dir_mode`) and open it (FileExistsError when it is
    there, or when someone else's folder took its place between the mkdir and the open)."""
    mode = dir_mode()
    os.mkdir(path, mode)
    folder = Folder(path, os.open(path, _OPEN_DIR))
    try:
        fd = folder._fd()
        ours = os.fstat(fd).st_uid == os.geteuid() and not os.listdir(fd)
        if ours:
            os.fchmod(fd, mode)
    except OSError:
        folder.close()
        raise
    if not ours:
        folder.close()
        raise FileExistsError(errno.EEXIST, "made by someone else meanwhile")
    return folder


def _fsync(path: Path) -> None:
    fd = os.open(path, _OPEN_DIR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
