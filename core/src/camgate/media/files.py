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
from pathlib import Path
from typing import Any

from camgate.errors import ConfigError, ExportError, ValidationError

__all__ = [
    "FILE_MODE_ENV",
    "PrivateFile",
    "abandoned",
    "dir_mode",
    "export_error",
    "file_mode",
    "inside",
    "make_dirs",
    "open_private",
    "partial_name",
    "remove_tree",
    "safe_name",
    "write_private",
]

#: The environment variable that sets the mode of the files camgate writes (octal, e.g. 0640).
FILE_MODE_ENV = "CAMGATE_FILE_MODE"
_DEFAULT_MODE = 0o600
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
                os.chmod(folder, mode)  # the umask may have taken bits away
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


def open_private(path: str | Path, *, truncate: bool = True) -> PrivateFile:
    """Open ``path`` for writing (created if missing) with :func:`file_mode`, set on the
    descriptor before any byte is written; a symlink is refused. ExportError when it cannot."""
    target = Path(path)
    mode = file_mode()
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags | (os.O_TRUNC if truncate else 0), mode)
    except OSError as exc:
        raise export_error(target, exc) from None
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        os.close(fd)
        raise export_error(target, exc) from None
    return PrivateFile(target, fd)


def partial_name(final: str | Path) -> Path:
    """Where an export to ``final`` is written until it is complete: ``.NAME.partial`` beside
    it (hidden, and no player takes it for a clip)."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial")


def write_private(path: str | Path, data: bytes, *, replace: bool = False) -> None:
    """Write ``data`` to the file ``path`` (:func:`file_mode`): under its partial name, synced,
    then renamed, so a reader never sees half a file. ExportError on a write error (the partial
    is removed); ValidationError when ``path`` exists, unless ``replace``."""
    final = Path(path)
    if not replace and (final.exists() or final.is_symlink()):
        raise ValidationError(f"{final} exists: camgate does not overwrite it")
    partial = partial_name(final)
    partial.unlink(missing_ok=True)
    sink = open_private(partial)
    try:
        sink.write(data)
        os.fsync(sink._fd())
        sink.close()
        os.rename(partial, final)
    except OSError as exc:
        sink.close()
        partial.unlink(missing_ok=True)
        raise export_error(final, exc) from None
    except BaseException:
        sink.close()
        partial.unlink(missing_ok=True)
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
    ``_ . -``, not starting with ``.``, ≤ 64), else a slug of it and a short hash of the
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


class PartialOutput:
    """An export to ``final`` (a file, or a folder with ``directory=True``) in progress.

    Creating it creates the partial file or folder (:func:`partial_name`, private mode) and
    takes an exclusive ``flock`` on it, held until :meth:`commit` or :meth:`discard`. Write
    into :attr:`partial`; :meth:`commit` moves it to ``final`` in one ``rename``. Refuses
    (ValidationError) when ``final`` exists — unless ``replace``, then a file (or an empty
    folder) there is replaced by the rename, atomically — or when a partial of the same name
    is there (another writer, or a crash's leftover that ``camgate retention run`` removes).
    """

    def __init__(
        self, final: str | Path, *, directory: bool = False, replace: bool = False
    ) -> None:
        self.final = Path(final)
        self.partial = partial_name(self.final)
        self.directory = directory
        self.replace = replace
        self._check_final()
        if self.partial.exists() or self.partial.is_symlink():
            raise ValidationError(f"{self.partial} exists: another export is under way")
        make_dirs(self.final.parent)
        try:
            if directory:
                mode = dir_mode()
                os.mkdir(self.partial, mode)
                os.chmod(self.partial, mode)
            else:
                open_private(self.partial).close()
            self._lock: int | None = os.open(self.partial, os.O_RDONLY | os.O_CLOEXEC)
        except FileExistsError:
            raise ValidationError(f"{self.partial} exists: another export is under way") from None
        except OSError as exc:
            raise export_error(self.partial, exc) from None
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def _check_final(self) -> None:
        final = self.final
        if not (final.exists() or final.is_symlink()):
            return
        if not self.replace:
            raise ValidationError(f"{final} exists: camgate does not overwrite it")
        if final.is_dir() != self.directory or (self.directory and any(final.iterdir())):
            raise ValidationError(f"{final} exists and cannot be replaced by this export")

    def _release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            os.close(lock)

    def commit(self) -> Path:
        """Sync and move the partial output to its final name; returns the final path."""
        try:
            if self.directory:
                for child in self.partial.iterdir():
                    _fsync(child)
            _fsync(self.partial)
            self._check_final()
            os.rename(self.partial, self.final)
            _fsync(self.final.parent)
        except OSError as exc:
            raise export_error(self.final, exc) from None
        finally:
            self._release()
        return self.final

    def discard(self) -> None:
        """Remove what was written and release the lock (idempotent)."""
        remove_tree(self.partial)
        self._release()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
