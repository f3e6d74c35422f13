"""Fast verification: the same checks as :class:`~camgate.audit.chain.ChainVerifier`, on ranges
of the log in parallel worker processes, merged in order.

Each record's own checks (its seq, its hash, its link to the record before it) need nothing
but the record and its predecessor, so a worker checks a range of records alone. What crosses
ranges is merged afterwards, in order: each range's first link against the previous range's
last hash; each owner's first record in a range against that owner's head after the ranges
before it; and at each checkpoint, the owners' heads up to it (the worker reports which heads
moved since the previous checkpoint), so the merge recomputes the owners' Merkle root and checks
the checkpoint exactly as the sequential verifier does (signature, head, root, previous
checkpoint), then the truncation and known-checkpoint checks.

The fast path only ever answers "all good": at the first doubt — a bad hash, link, seq,
owner link or checkpoint, or a record it cannot read the quick way — it gives up, and the
caller runs the sequential verifier, which names the first bad record with its exact message.
So verification's result is the sequential verifier's whenever anything is wrong, and an OK from
the fast path means every check the sequential verifier makes passed.

Per record, the work is kept small: the hashed bytes are built by string joining from the
stored canonical texts (no JSON parsing), and a record about one owner (the usual case) has its
owner link read by slicing its canonical ``{"owner":"hash"}`` text rather than by ``json.loads``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import attrs

from camgate.audit.chain import GENESIS, ChainVerifier, VerifyResult, _Bad, leaf_hash

__all__ = [
    "NativeScan",
    "RangeReader",
    "RangeScan",
    "default_workers",
    "fast_verify",
    "native_range",
    "scan_range",
]

RangeReader = Callable[[int | None, int | None], Iterator[tuple[int, str, str, str, str, str, str]]]
"""``reader(after, until)``: the rows ``after < seq <= until`` in seq order (None: unbounded);
picklable when it is to run in worker processes."""

NativeScan = Callable[
    [int | None, int | None, int, Sequence[int]],
    tuple[int, str, str, dict[str, str],
          list[tuple[int, str, dict[str, tuple[str, int]], dict[str, bytes]]],
          dict[str, tuple[str, int]]] | None,
]  # fmt: skip
"""``scan(after, until, lo, checkpoints)``: :func:`camgate_native.scan_sqlite` bound to a file,
or :func:`camgate_native.scan_postgres` bound to a connection string."""

_encode_str = json.encoder.encode_basestring
_NO_OWNERS = "{}"


@attrs.frozen
class RangeScan:
    """What a worker found in one range; ``ok`` False means "let the sequential verifier look"."""

    ok: bool
    count: int = 0
    first_link: str = GENESIS
    last: str = GENESIS
    first_links: dict[str, str] = attrs.field(factory=dict)
    # (seq, hash at seq, owner heads that moved since the previous snapshot, and their Merkle
    # leaves) per checkpoint
    snapshots: list[tuple[int, str, dict[str, tuple[str, int]], dict[str, bytes]]] = attrs.field(
        factory=list
    )
    tail: dict[str, tuple[str, int]] = attrs.field(factory=dict)


def _plain(owner: str, plain: set[str]) -> bool:
    """True (and remembered) when ``owner`` is written in JSON as itself, between quotes."""
    if "\\" in owner or not owner.isprintable():
        return False
    plain.add(owner)
    return True


def scan_range(
    reader: RangeReader, after: int | None, until: int | None, lo: int, checkpoints: Sequence[int]
) -> RangeScan:
    """Check the rows ``after < seq <= until``, which must be records ``lo+1, lo+2, ...``.

    ``checkpoints`` are the checkpoint seqs in the range (ascending): at each, the hash and the
    owner heads moved since the one before are reported for the merge. A row the reader cannot
    hand over (text that is not UTF-8, say) is a doubt too: the sequential verifier reads rows
    its own, lenient way, and names the record or raises the store's error.
    """
    try:
        return _scan_range(reader, after, until, lo, checkpoints)
    except Exception:
        return RangeScan(False)


def _scan_range(
    reader: RangeReader, after: int | None, until: int | None, lo: int, checkpoints: Sequence[int]
) -> RangeScan:
    sha = hashlib.sha256
    enc = _encode_str
    kinds: dict[str, str] = {}
    plain: set[str] = set()  # owner ids seen to need no JSON escape
    heads: dict[str, tuple[str, int]] = {}
    first: dict[str, str] = {}
    moved: dict[str, tuple[str, int]] = {}
    snapshots: list[tuple[int, str, dict[str, tuple[str, int]], dict[str, bytes]]] = []
    cps = iter(checkpoints)
    next_cp = next(cps, -1)
    n = lo
    prev: str | None = None
    first_link = GENESIS
    for seq, at, kind, body, owners, link, digest in reader(after, until):
        n += 1
        if seq != n:
            return RangeScan(False)
        if prev is None:
            first_link = link
        elif link != prev:
            return RangeScan(False)
        k = kinds.get(kind)
        if k is None:
            k = kinds[kind] = enc(kind)
        if owners == _NO_OWNERS:
            text = f'{{"at":{enc(at)},"body":{body},"kind":{k},"prev":"{link}","seq":{seq}}}'
        else:
            text = (
                f'{{"at":{enc(at)},"body":{body},"kind":{k},"owners":{owners}'
                f',"prev":"{link}","seq":{seq}}}'
            )
        if sha(text.encode()).hexdigest() != digest:
            return RangeScan(False)
        if owners != _NO_OWNERS:
            # {"owner":"hash"} with a plain owner id (no escapes): split, not json.loads.
            parts = owners.split('"')
            if (
                len(parts) == 5
                and parts[0] == "{"
                and parts[2] == ":"
                and parts[4] == "}"
                and (parts[1] in plain or _plain(parts[1], plain))
            ):
                owner = parts[1]
                head = heads.get(owner)
                if head is None:
                    first[owner] = parts[3]
                elif head[0] != parts[3]:
                    return RangeScan(False)
                heads[owner] = moved[owner] = (digest, seq)
            else:
                try:
                    pairs = json.loads(owners).items()
                except (ValueError, AttributeError):
                    return RangeScan(False)
                for owner, oprev in pairs:
                    head = heads.get(owner)
                    if head is None:
                        first[owner] = oprev
                    elif head[0] != oprev:
                        return RangeScan(False)
                    heads[owner] = moved[owner] = (digest, seq)
        prev = digest
        if seq == next_cp:
            leaves = {o: leaf_hash(o, h, s) for o, (h, s) in moved.items()}
            snapshots.append((seq, digest, moved, leaves))
            moved = {}
            next_cp = next(cps, -1)
    if next_cp != -1:
        return RangeScan(False)  # a checkpoint in the range was not reached
    return RangeScan(True, n - lo, first_link, prev or GENESIS, first, snapshots, moved)


def _merge(verifier: ChainVerifier, scans: Sequence[RangeScan]) -> VerifyResult | None:
    """Fold the ranges' results into ``verifier`` in order; None at the first doubt."""
    heads = verifier._heads
    dirty = verifier._dirty
    cps = verifier._cps
    total = 0
    try:
        for scan in scans:
            if not scan.ok or scan.first_link != verifier.head:
                return None
            for owner, oprev in scan.first_links.items():
                if heads.get(owner, (GENESIS, 0))[0] != oprev:
                    return None
            for seq, digest, moved, leaves in scan.snapshots:
                heads.update(moved)
                dirty.difference_update(moved)
                verifier._leaves.update(leaves)
                if verifier._cp_done >= len(cps) or cps[verifier._cp_done].seq != seq:
                    return None
                verifier.count, verifier.head = seq, digest
                verifier._checkpoint(cps[verifier._cp_done])
            heads.update(scan.tail)
            dirty.update(scan.tail)
            total += scan.count
            verifier.count = total
            if scan.count:
                verifier.head = scan.last
        verifier._finish()
    except _Bad:
        return None
    return verifier.passed()  # the same verdicts as the sequential verifier (``empty`` too)


def _context() -> multiprocessing.context.BaseContext:
    # fork is cheap and safe while this process runs one thread (the CLI); otherwise forkserver.
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver")


def native_range(
    native: NativeScan,
    reader: RangeReader,
    after: int | None,
    until: int | None,
    lo: int,
    checkpoints: Sequence[int],
) -> RangeScan:
    """:func:`scan_range` by the compiled scanner (``camgate_native``), same result.

    Where the scanner doubts (an owner id written with escapes, say) or fails (it cannot read
    the file, say), the range is scanned again by :func:`scan_range`, which knows every case;
    its doubt is the caller's cue for the sequential verifier, as always.
    """
    try:
        found = native(after, until, lo, checkpoints)
    except Exception:  # unreadable file, a bound beyond int64, no memory: the Python scan looks
        found = None
    if found is None:
        return scan_range(reader, after, until, lo, checkpoints)
    count, first_link, last, first, snapshots, tail = found
    return RangeScan(True, count, first_link, last, first, snapshots, tail)


def fast_verify(
    verifier: ChainVerifier,
    reader: RangeReader,
    last_seq: int,
    *,
    workers: int = 1,
    records_per_worker: int = 50_000,
    native: NativeScan | None = None,
) -> VerifyResult | None:
    """Verify the log through ``reader`` in ``workers`` ranges (processes when more than one).

    ``last_seq`` (the highest seq when verification starts) only places the range boundaries:
    the first range starts at the very first row and the last runs to the very last, so every
    row is read whatever its seq. Returns the result when everything holds, None when anything
    does not (then run ``verifier.run`` on the rows to name the first bad record). A process
    is started only for every ``records_per_worker`` records (starting one costs more than
    checking a small log).

    With ``native`` (the compiled scanner bound to the log's SQLite file or database, see
    :func:`native_range`) the ranges are checked in C by threads of this process, since the
    scanner releases the GIL: no process to start, no row ever becomes a Python object.
    """
    workers = max(1, min(workers, last_seq // max(1, records_per_worker)))
    cp_seqs = [c.seq for c in verifier._cps]
    bounds = [last_seq * i // workers for i in range(workers + 1)]
    tasks = []
    for i in range(workers):
        lo, hi = bounds[i], bounds[i + 1]
        after = None if i == 0 else lo
        until = None if i == workers - 1 else hi
        mine = [s for s in cp_seqs if (i == 0 or s > lo) and (until is None or s <= hi)]
        tasks.append((reader, after, until, lo, mine))
    if native is not None:
        if workers == 1:
            scans = [native_range(native, *tasks[0])]
        else:
            with ThreadPoolExecutor(workers) as threads:
                scans = list(threads.map(lambda t: native_range(native, *t), tasks))
    elif workers == 1:
        scans = [scan_range(*tasks[0])]
    else:
        with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
            futures = [pool.submit(scan_range, *t) for t in tasks]
            scans = [f.result() for f in futures]
    # Every range but the last must hold exactly its records (the last may have grown).
    for i, scan in enumerate(scans[:-1]):
        if scan.count != bounds[i + 1] - bounds[i]:
            return None
    return _merge(verifier, scans)


def default_workers() -> int:
    """Worker processes for verification: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))
