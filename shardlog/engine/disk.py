"""One data directory: its stream of records, its chunks, its flusher.

Every group placed on a disk writes into the disk's single stream; that is
what lets one fsync make the writes of many groups durable. Records are
encoded into ``pending`` (a bytearray) and handed to the flusher when a flush
asks for it or when the buffer is full. The flusher reports the offset up to
which the stream is durable (``synced``); that answers flushes, lets durable
payloads leave the cache and lets dead chunks be deleted.

Every method here runs under the store's lock; the flusher's callbacks take it
too, and call user callbacks only after releasing it.
"""

import logging
import os
from array import array
from collections import deque

from shardlog.errors import CorruptedLog, DiskFailed, DiskFull
from shardlog.ops import TAKEN_WHEN_LOW
from shardlog.workers.messages import RemoveRequest, WriteRequest
from shardlog.workers.naming import chunk_file_name, chunk_path

from . import codec
from .cache import PayloadCache
from .chunks import Readers
from .codec import APPEND, APPEND_HEAD, APPEND_OVERHEAD, APPEND_PAYLOAD_AT, APPEND_TYPE_AND_SIZE, CRC
from .group import NO_PAYLOADS, GroupState

log = logging.getLogger(__name__)

#: What a group's state costs on disk when it is written forward (see Disk.live_size).
STATE_COST = 128
#: Chunks above twice the live bytes from which relocation copies (soft), and
#: which the disk does not pass (hard): see Disk._over_space_bound.
SOFT_SLACK, HARD_SLACK = 2, 4
#: Groups a scan of the oldest chunk (relocation, carry-forward) looks at per
#: call; it goes on at the next progress report. The store's lock is held
#: meanwhile: 10,000 held it for 24-84 ms, and busy groups beside 100k idle
#: ones lost half their rate.
SCAN_LIMIT = 256
#: The room preallocated for a disk's first chunk (see Disk._reserve_for_next).
FIRST_RESERVE = 4 << 20
#: Bytes of adjacent records read from a chunk file with one pread, at most (see Disk.read_payloads).
READ_SPAN = 1 << 20

# Bound once: the hot path calls them for every entry.
_pack_append = APPEND_HEAD.pack
_pack_crc = CRC.pack
_crc32 = codec.crc32


class Disk:
    def __init__(self, path, settings, recovered, lock, flusher_factory, events, files):
        self.path = os.fspath(path)
        self._lock = lock
        self.max_size = settings["chunk_max_size"]
        self.max_records = settings["chunk_max_records"]
        self.write_buffer_size = settings["write_buffer_size"]
        self.preallocate = settings["chunk_preallocate"]
        #: Bytes the open chunk's file is given up front (workers/writer.py,
        #: "preallocated chunk files"): see _reserve_for_next.
        self.reserve = 0
        self.cache = PayloadCache(settings["cache_max_items"], settings["cache_max_bytes"], self)
        self.readers = Readers(self.path, settings["max_open_chunk_files"], files)
        self.chunks = recovered.chunks
        #: Groups by id: all of the store's once it opens (it shares one dict
        #: among its disks); those on this disk are counted here.
        self.groups = recovered.groups
        self.group_count = len(recovered.groups)
        for group in self.groups.values():
            group.disk = self
        #: End of the stream, including what is still pending.
        self.end = recovered.end
        #: Everything below this offset is on stable storage.
        self.synced = recovered.end
        #: Highest offset a sync request already sent will make durable.
        self.sync_requested = recovered.end
        self.pending = bytearray()
        self.pending_at = recovered.end
        self.seq = 0
        self.done_seq = 0
        #: Entries and payload bytes appended since open (for entries per fsync, metrics).
        self.appended = 0
        self.appended_bytes = 0
        #: ``(offset, seq, callback)`` of flushes waiting for ``synced`` to reach
        #: offset and ``done_seq`` to reach seq.
        self.waiters = deque()
        self.failed = None
        #: DiskFull while the flusher reports the disk full; writes are refused meanwhile.
        self.full = None
        #: DiskFull while the disk runs on its spare: only ops.TAKEN_WHEN_LOW are taken.
        self.low = None
        #: Set by the service while free space is under its reserve: no new group goes here.
        self.under_reserve = False
        self.relocate_max_bytes = settings["relocate_max_bytes"]
        self.lagging_rounds = settings["lagging_rounds"]
        #: gid -> rotations a lagging group has pinned the oldest chunk (see _relocate).
        self.lagging = {}
        self.events = events
        self.flusher = flusher_factory(self.path, self._on_progress, self._on_failure,
                                       synced=recovered.end, on_full=self._on_full, on_low=self._on_low)
        if self.chunks.open is None:  # a fresh disk, or the newest chunk is sealed
            self._open_chunk()
        else:  # (its file exists: the writer makes the next one this size)
            self.reserve = self._reserve_for_next()

    # ------------------------------------------------------------ writing

    def check_writable(self, op=None):
        """Refuse an op (a name of ops.py, None for a new group) the disk cannot take now.

        On its spare (``low``) a disk still takes what frees space; full, it
        takes nothing: an op taken then could not be made durable, and its
        flush would report DiskFull for an op that had taken effect."""
        if self.failed is not None:
            raise self.failed
        if self.full is not None:
            raise self.full
        if self.low is not None and op not in TAKEN_WHEN_LOW and op != "drop_group":
            raise self.low

    def put(self, group, record):
        """Add one encoded record of ``group`` to the stream. The caller applies it
        to memory, then calls ``after_write``, so the footer sealing the chunk
        holds the state with this record in it."""
        self.pending += record
        self.end += len(record)
        self.chunks.open.records += 1
        self.chunks.touch(group)

    def create_group(self, gid):
        group = GroupState(gid, self)
        self.put(group, codec.encode(codec.GROUP_CREATE, gid))
        self.groups[gid] = group
        self.group_count += 1
        self.after_write()
        return group

    def drop_group(self, group):
        self.put(group, codec.encode(codec.GROUP_DROP, group.gid))
        self.chunks.leave_base(group, self.end)
        group.drop_all()
        del self.groups[group.gid]
        self.lagging.pop(group.gid, None)  # (a group created again under its gid starts afresh)
        self.group_count -= 1
        self.after_write()

    def append(self, group, entries, apply):
        """Encode checked entries (``((term, index), bytes)``) and index them.

        The hot path of the engine: one struct pack, two crc32 calls and three
        array appends per entry, no object built per entry. Entries that span
        chunks are encoded a chunk's worth at a time, and each run is applied
        (``apply(group, run)``, ops.py's) before the chunk rotates, so each
        checkpoint holds the entries before it.
        """
        if len(entries) == 1:
            log_id, payload = entries[0]
            return self.append_singles(((group, log_id, payload),), apply)
        gid = group.gid
        index = group.index
        places = index.places
        payloads = group.payloads
        if payloads is NO_PAYLOADS:
            payloads = group.payloads = {}
        pack, pack_crc, crc32 = _pack_append, _pack_crc, _crc32
        if not len(index):
            index.start_at(entries[0][0][1], entries[0][0][0])
            places = index.places
        add_term = index.add_term
        term_now = None  # the term added last: a run of one term adds it once
        n = len(entries)
        i = 0
        while i < n:
            self.chunks.touch(group)
            chunk = self.chunks.open
            buf = self.pending
            offset = self.end
            size_limit = chunk.start + self.max_size
            stop = min(n, i + self.max_records - chunk.records)
            first = i
            nbytes = 0
            while i < stop:
                (term, idx), payload = entries[i]
                size = len(payload)
                head = pack(APPEND, gid, term, idx, size)
                buf += head
                buf += payload
                buf += pack_crc(crc32(payload, crc32(head)))
                if term != term_now:
                    add_term(term)
                    term_now = term
                places.append(offset)
                places.append(size)
                payloads[idx] = payload
                offset += APPEND_OVERHEAD + size
                nbytes += size
                i += 1
                if offset >= size_limit:
                    break
            count = i - first
            self.appended += count
            self.appended_bytes += nbytes
            chunk.records += count
            chunk.live += count
            self.chunks.live_bytes += nbytes + count * APPEND_OVERHEAD
            self.end = offset
            apply(group, entries if count == n else entries[first:i])
            self.cache.added(gid, entries[first][0][1], entries[i - 1][0][1], offset, nbytes)
            self.after_write()
        if self.cache.evictable(self.synced):
            self.cache.evict(self.synced)

    def append_columns(self, runs, log_ids, payloads, apply):
        """``append`` of the runs of checked AppendColumns that fall on this
        disk, in order: ``runs`` holds ``(group, lo, hi)``, rows ``[lo, hi)``
        being consecutive entries of ``group``, whose log ids and payloads are
        ``log_ids[lo:hi]`` and ``payloads[lo:hi]`` (AppendColumns.cut)."""
        singles = []
        for group, lo, hi in runs:
            if hi - lo == 1:
                singles.append((group, log_ids[lo], payloads[lo]))
                continue
            if singles:
                self.append_singles(singles, apply)
                singles = []
            self.append(group, list(zip(log_ids[lo:hi], payloads[lo:hi])), apply)
        if singles:
            self.append_singles(singles, apply)

    def append_singles(self, singles, apply):
        """``append`` of one entry to each of many groups, ``singles`` holding
        ``(group, log_id, payload)``: a round of many Raft groups.

        The loop every such entry runs, so it makes no method call in the
        common case: every name is hoisted out of it, and the counters are
        kept in locals and stored before anything that reads them (a
        rotation, a send) and at the end.
        """
        pack, pack_crc, crc32 = _pack_append, _pack_crc, _crc32
        chunks, cache = self.chunks, self.cache
        writes = cache.writes
        max_records, max_size, buffer_size = self.max_records, self.max_size, self.write_buffer_size
        buf, chunk, end = self.pending, chunks.open, self.end
        limit = chunk.start + max_size
        count = nbytes = 0
        for group, log_id, payload in singles:
            term, idx = log_id
            index = group.index
            places = index.places
            if len(places) >> 1 == index.head:  # empty (len(index), without the call)
                index.start_at(idx, term)
                places = index.places
            size = len(payload)
            gid = group.gid
            head = pack(APPEND, gid, term, idx, size)
            buf += head
            buf += payload
            buf += pack_crc(crc32(payload, crc32(head)))
            if index.terms != term:  # (equal: the one term of every entry, nothing to add)
                index.add_term(term)
            places.append(end)
            places.append(size)
            payloads = group.payloads
            if payloads is NO_PAYLOADS:
                payloads = group.payloads = {}
            payloads[idx] = payload
            end += APPEND_OVERHEAD + size
            count += 1
            nbytes += size
            if group.chunk is not chunk:  # chunks.touch, inlined
                group.chunk = chunk
                chunk.touched.append(group)
            apply(group, ((log_id, payload),))
            writes.append((gid, idx, idx, end, size))  # cache.added, inlined
            chunk.records += 1
            if chunk.records >= max_records or end >= limit or len(buf) >= buffer_size:
                self._count_appends(chunk, end, count, nbytes)
                count = nbytes = 0
                self.after_write()
                buf, chunk, end = self.pending, chunks.open, self.end
                limit = chunk.start + max_size
        self._count_appends(chunk, end, count, nbytes)
        if (cache.items > cache.max_items or cache.bytes > cache.max_bytes) and writes[0][3] <= self.synced:
            cache.evict(self.synced)  # cache.evictable, inlined

    def _count_appends(self, chunk, end, count, nbytes):
        """What ``append_singles`` wrote, counted where the rest of the disk reads it
        (``chunk.records`` is counted as it goes: the loop reads it)."""
        self.end = end
        self.appended += count
        self.appended_bytes += nbytes
        chunk.live += count
        self.chunks.live_bytes += nbytes + count * APPEND_OVERHEAD
        cache = self.cache
        cache.items += count
        cache.bytes += nbytes

    def after_write(self):
        chunk = self.chunks.open
        if chunk.records >= self.max_records or self.end - chunk.start >= self.max_size:
            self._rotate()
        if len(self.pending) >= self.write_buffer_size:
            self._send(sync=False)

    def _reserve_for_next(self):
        """What the next chunk's file is given: twice the biggest of the last
        chunks (so chunks that close on their record count, or at a clean
        stop, are not given chunk_max_size each), chunk_max_size at most,
        4 MiB for the first."""
        if not self.preallocate:
            return 0
        sealed = [c.end - c.start for c in self.chunks.chunks[-5:] if c.end is not None]
        wanted = 2 * max(sealed) if sealed else FIRST_RESERVE
        return min(self.max_size, -(-wanted // codec.PAGE_SIZE) * codec.PAGE_SIZE)

    def _open_chunk(self):
        self.reserve = self._reserve_for_next()
        chunk = self.chunks.add(self.end)
        record = codec.encode_chunk_header(chunk.start)
        self.pending += record
        self.end += len(record)
        chunk.records = 1

    def seal_for_close(self):
        """Seal the open chunk on a clean stop, so the next open reads its footer
        instead of replaying its records (a 64 MiB chunk of small records
        took seconds). The next chunk is begun too: whatever is still written
        (a state carried forward) goes there."""
        chunk = self.chunks.open
        if chunk.records <= 1 or self.failed is not None or self.full is not None:
            return
        self._rotate(lagging_round=False)

    def _seal(self, chunk):
        record = _footer_record(chunk, self.groups)
        self.pending += record
        self.end += len(record)
        chunk.records += 1
        chunk.end = self.end
        self._send(sync=False)
        self.chunks.seal(chunk, self.groups)

    def _rotate(self, lagging_round=True):
        """Seal the open chunk with its footer and open the next one.

        The footer's work is proportional to what the chunk holds (the groups
        it touched, its entries), never to the number of groups on the disk.
        """
        old = self.chunks.open
        self._seal(old)
        self._open_chunk()
        if lagging_round:  # (a close is no round of notice)
            self._count_lagging_round()
        log.info("%s: sealed chunk %s (%d records, %d groups, %d bytes), opened %s", self.path,
                 chunk_file_name(old.start), old.records, len(old.touched), old.end - old.start,
                 chunk_file_name(self.chunks.open.start))

    def _send(self, sync):
        if not self.pending and not sync:
            return
        self.seq += 1
        self.flusher.submit(WriteRequest(self.seq, self.chunks.open.start, self.pending_at,
                                         self.pending, sync, self.reserve))
        self.pending = bytearray()
        self.pending_at = self.end
        if sync:
            self.sync_requested = self.end

    # ------------------------------------------------------------ durability

    def flush(self, callback):
        """Ask for everything written so far to be durable.

        Returns the result to hand to ``callback`` right away (None or an
        error) as ``(True, result)``, or ``(False, None)`` when the callback
        was queued until the flusher reports.
        """
        if self.failed is not None:
            return True, self.failed
        target = self.end
        if target <= self.synced and self.done_seq >= self.seq:
            return True, None
        if self.full is not None:
            # Not durable, and nothing says when it will be: say so now, as the
            # flushes waiting when the disk filled were told.
            return True, self.full
        if target > self.synced and self.sync_requested < target:
            self._send(sync=True)
        # Also wait for what was sent before (a chunk removal, say): when a
        # flush returns, the flusher has carried out everything asked of it.
        self.waiters.append((target, self.seq, callback))
        return False, None

    def _on_progress(self, seq, synced):
        with self._lock:
            self.done_seq = seq
            if synced > self.synced:
                self.synced = synced
            else:
                synced = self.synced
            if self.cache.evictable(synced):
                self.cache.evict(synced)
            ready = []
            # Deleting the chunks this progress made removable is the
            # flusher's work from here: no flush waits for it (issue 12).
            self._collect_garbage()
            waiters = self.waiters
            while waiters and waiters[0][0] <= synced and waiters[0][1] <= seq:
                ready.append(waiters.popleft()[2])
        if ready:
            _deliver(ready, None)

    def _on_failure(self, exc):
        with self._lock:
            self.failed = DiskFailed(f"disk {self.path} failed: {exc}; it takes no writes until "
                                     "the store is reopened")
            ready = [cb for _, _, cb in self.waiters]
            self.waiters.clear()
        log.error("%s", self.failed)
        _deliver(ready, self.failed)

    def _on_full(self, message):
        """The disk filled up (``message``) or has space again (None).

        Writes already accepted stay in memory and in the flusher, to be
        written once there is space; flushes waiting now are told DiskFull
        (their data is not durable), new writes are refused.
        """
        with self._lock:
            if message is None:
                self.full = None
                log.warning("%s: space is back; writes resume", self.path)
                return
            self.full = DiskFull(f"disk {self.path} is full ({message}); free space and retry")
            ready = [cb for _, _, cb in self.waiters]
            self.waiters.clear()
            self.sync_requested = self.synced  # the next flush asks again
        log.error("%s", self.full)
        _deliver(ready, self.full)

    def _on_low(self, message):
        """The disk began running on its spare (``message``), or holds it again (None)."""
        with self._lock:
            if message is None:
                self.low = None
            else:
                self.low = DiskFull(f"disk {self.path} is out of space ({message}); it takes only "
                                    f"{', '.join(sorted(TAKEN_WHEN_LOW))} and drop_group until space is "
                                    "freed: purge or drop groups")
        if message is None:
            log.warning("%s: space is back (the spare is held again); every write is taken", self.path)
        else:
            log.error("%s", self.low)

    def _collect_garbage(self):
        """Free the oldest chunks: carry forward the state they hold, relocate the
        few live entries that pin them, and ask the flusher to delete those that
        may go.

        Copying is bounded per call (``write_buffer_size`` bytes); the next
        progress report goes on where this one stopped, so no call holds the
        lock for long, whatever the number of groups.
        """
        budget = [self.write_buffer_size]
        dead = []
        copied = self.end
        for chunk in self.chunks.chunks[:-1]:
            if chunk.end is None:
                break
            if chunk.live and budget[0] > 0:
                # Over the soft bound, copy; under it, only look for lagging groups,
                # so their notice runs before the space is needed.
                self._relocate(chunk, budget, copy=self._over_space_bound(SOFT_SLACK))
            if chunk.live:
                break
            if chunk.holders and budget[0] > 0 and (
                    2 * STATE_COST * chunk.holders < chunk.end - chunk.start or self._over_space_bound()):
                # Worth it: the chunk is mostly garbage, or the disk is over its
                # bound. (A chunk of states alone would be copied on and on.)
                self._carry_forward(chunk, budget)
            if chunk.holders or chunk.free_at > self.synced:
                break
            dead.append(chunk)
        if self.end > copied:
            self._send(sync=True)  # what was copied must be durable before its chunks go
        if not dead:
            return
        self.seq += 1
        self.flusher.submit(RemoveRequest(self.seq, tuple(c.start for c in dead), dead[-1].end))
        for chunk in dead:
            log.info("%s: removing chunk %s: no live entry or state left", self.path,
                     chunk_file_name(chunk.start))
        self.chunks.drop_oldest(len(dead))
        for chunk in dead:
            self.readers.forget(chunk.start)

    def _count_lagging_round(self):
        """A rotation is a round for the lagging groups that still pin the oldest
        chunk (the others are forgiven); the oldest chunk is scanned again."""
        oldest = self.chunks.chunks[0]
        if oldest.relocate_cursor >= len(oldest.touched):
            oldest.relocate_cursor = 0
        for gid in list(self.lagging):
            group = self.groups.get(gid)
            first = None if group is None else group.index.first_offset()
            if first is None or oldest.end is None or first >= oldest.end:
                del self.lagging[gid]
            else:
                self.lagging[gid] += 1

    def live_size(self):
        """Bytes the disk cannot do without: its live entries' records, and for
        each group about what its state costs when it moves (a State record and
        its footer entry). Without the latter, a disk of idle groups holding
        an entry each would count its own states as garbage, and relocate them
        forever."""
        return self.chunks.live_bytes + STATE_COST * self.group_count

    def _over_space_bound(self, slack=HARD_SLACK, extra=0):
        """More bytes on disk (and ``extra`` to come) than twice what is live plus
        ``slack`` chunks. Four is the bound relocation keeps (docs/format.md,
        "Space"); small groups and lagging ones whose notice ran out are copied
        from two on."""
        on_disk = self.end - self.chunks.chunks[0].start + extra
        return on_disk > 2 * self.live_size() + slack * self.max_size

    def _carry_forward(self, chunk, budget):
        """Write the whole state of the groups whose base is ``chunk`` into the
        open chunk (raft-log's State record), so that ``chunk`` can go."""
        for group in _scan(chunk, "carry_cursor", budget):
            if group.base is not chunk:
                continue
            if self.groups.get(group.gid) is not group:  # dropped: nothing to carry
                self.chunks.leave_base(group, self.end)
                continue
            record = codec.encode(codec.STATE, group.gid, group.state())
            self.put(group, record)
            self.chunks.leave_base(group, self.end)
            budget[0] -= len(record)
            self.after_write()

    def _relocate(self, chunk, budget, copy):
        """Copy forward the entries of the groups that pin ``chunk`` (the oldest),
        if ``copy`` (the disk is over its soft bound).

        A group holding at most ``relocate_max_bytes`` of records is copied at
        once; a bigger one is lagging: reported (stat, metrics, an event) as
        soon as it pins the oldest chunk, and copied once it has pinned it for
        ``lagging_rounds`` rotations, or at once when its copy would take the
        disk past its hard bound (the old copy goes only after the new one is
        durable). raft-engine asks the application to compact such a
        group and rewrites it after 9 ignored rounds; here the small ones cost
        nothing to anyone, the notice to the big ones runs while there is
        still room, and the bound on disk space holds whatever they do.
        """
        end = chunk.end
        for group in _scan(chunk, "relocate_cursor", budget):
            head = group.head
            held = len(group)
            # Cheapest tests first: most groups of an old chunk left it, or hold
            # one small entry (a survey skips those).
            if not held or group.offset(head) >= end or (not copy and held == 1
                                                         and group.size(head) <= self.relocate_max_bytes):
                continue
            if self.groups.get(group.gid) is not group:
                continue
            size = group.live_bytes()
            rounds = self.lagging.get(group.gid)
            lagging = size > self.relocate_max_bytes
            if not lagging:
                if not copy:
                    continue
            elif not copy or ((rounds is None or rounds < self.lagging_rounds)
                              and not self._over_space_bound(extra=size)):  # its notice runs on
                if rounds is None:
                    self.lagging[group.gid] = 0
                    self.events.add("lagging", gid=group.gid, disk=self.path, entries=len(group.index),
                                    bytes=size, chunk=chunk.start, relocated_after=self.lagging_rounds)
                    log.warning("%s: group %d is lagging: its %d entries (%d bytes) pin chunk %s; "
                                "after %d rotations, it is copied forward when the disk needs the space "
                                "unless it purges", self.path,
                                group.gid, len(group.index), size, chunk_file_name(chunk.start),
                                self.lagging_rounds)
                continue
            if lagging:
                self.lagging.pop(group.gid, None)
            self._relocate_group(group)
            budget[0] -= size
            if lagging:
                self.events.add("relocated", gid=group.gid, disk=self.path, entries=len(group.index),
                                bytes=size, forced=True, rounds=rounds)
                log.warning("%s: relocated lagging group %d (%d entries, %d bytes)", self.path,
                            group.gid, len(group.index), size)

    def _relocate_group(self, group):
        """Copy every live entry of ``group`` to the open chunk as Relocate records.

        All of them, not only those in old chunks: a group's entries then stay
        in stream order, which the index and the footers rely on. The copies
        are cached until durable, like any unsynced payload.
        """
        idx = group.index
        head, n = idx.head, idx.positions()
        gid, first = group.gid, idx.first
        terms, offsets, sizes = idx.term_column(head, n), idx.offset_column(0, n), idx.size_column(0, n)
        payloads = group.payloads
        if payloads is NO_PAYLOADS:
            payloads = group.payloads = {}
        missing = [pos for pos in range(head, n) if first + pos - head not in payloads]
        if missing:
            read = self.read_payloads([offsets[pos] for pos in missing], [sizes[pos] for pos in missing])
            payloads.update(zip([first + pos - head for pos in missing], read))
        buf = self.pending
        offset = self.end
        moved = array("Q")
        nbytes = 0
        for pos in range(head, n):
            index = first + pos - head
            payload = payloads[index]
            buf += codec.encode_append(gid, (terms[pos - head], index), payload, codec.RELOCATE)
            moved.append(offset)
            offset += APPEND_OVERHEAD + sizes[pos]
            nbytes += sizes[pos]
        self.end = offset
        chunks = self.chunks
        chunks.touch(group)
        chunks.release(idx, head, n, offset)  # the old copies die once the new ones are durable
        idx.move(head, moved)
        chunk = chunks.open
        chunk.live += n - head
        chunk.records += n - head
        self.cache.added(gid, first, first + n - head - 1, offset, nbytes)
        self.after_write()

    # ------------------------------------------------------------ reading

    def read_payloads(self, offsets, sizes):
        """Payloads of the Append (or Relocate) records at global ``offsets``,
        of ``sizes``, read from the chunk files. Records that lie one after
        another in a chunk (a group's run of appends) are read with one pread
        of up to READ_SPAN bytes: with a pread per entry, uncached entries (a
        lagging follower's, any after a restart) took 2.3-3.6 us an entry to
        read, 1.6-1.8 this way (200k entries of one group, after a reopen).
        Every record is checked (type, size, crc32): opening by footers does
        not read records, so damage is caught here."""
        out = []
        chunks, readers = self.chunks, self.readers
        fds, pread = readers.fds, readers.files.pread
        type_and_size, unpack_crc, crc32 = APPEND_TYPE_AND_SIZE.unpack_from, CRC.unpack_from, _crc32
        relocate = codec.RELOCATE
        k, n = 0, len(offsets)
        while k < n:
            first = offsets[k]
            chunk = chunks.find(first)
            chunk_end = (1 << 64) if chunk.end is None else chunk.end
            span_end = first + APPEND_OVERHEAD + sizes[k]
            j = k + 1
            while j < n and offsets[j] == span_end and span_end < chunk_end and span_end - first < READ_SPAN:
                span_end += APPEND_OVERHEAD + sizes[j]
                j += 1
            fd = fds.get(chunk.start)
            if fd is None:  # (0 is a descriptor too)
                fd = readers.open(chunk.start)
            data = pread(fd, span_end - first, first - chunk.start)
            if len(data) < span_end - first:  # the first record not whole: the last one begun
                short = max(i for i in range(k, j) if offsets[i] - first <= len(data))
                at = offsets[short] - first
                raise CorruptedLog(chunk_path(self.path, chunk.start), offsets[short] - chunk.start,
                                   f"short read: {len(data) - at} of {APPEND_OVERHEAD + sizes[short]} bytes")
            view = memoryview(data)
            for i in range(k, j):
                at = offsets[i] - first
                end = at + APPEND_OVERHEAD + sizes[i]
                rtype, size = type_and_size(data, at)
                if ((rtype != APPEND and rtype != relocate) or size != sizes[i]
                        or unpack_crc(data, end - 8)[0] != crc32(view[at:end - 8])):
                    raise CorruptedLog(chunk_path(self.path, chunk.start), offsets[i] - chunk.start,
                                       "the entry's record is damaged (type, length or crc32 checksum)")
                out.append(data[at + APPEND_PAYLOAD_AT:end - 8])
            k = j
        return out

    # ------------------------------------------------------------ the rest

    def lagging_groups(self):
        """The lagging groups (see _relocate): what ``stat`` and metrics show."""
        return [{"gid": gid, "entries": len(self.groups[gid].index),
                 "bytes": self.groups[gid].live_bytes(), "rounds": rounds,
                 "relocated_in": max(0, self.lagging_rounds - rounds)}
                for gid, rounds in sorted(self.lagging.items()) if gid in self.groups]

    def pinning_groups(self, limit=10):
        """Groups with a live entry in the oldest chunk: what keeps it on disk."""
        oldest = self.chunks.chunks[0]
        if oldest.is_open:
            return []
        # Entries in a chunk were written by the groups that touched it.
        pins = {g.gid for g in oldest.touched if self.groups.get(g.gid) is g
                and (off := g.index.first_offset()) is not None and off < oldest.end}
        return sorted(pins)[:limit]

    def stat(self):
        pinning = self.chunks.pinning_chunk()
        flusher = self.flusher.stats()
        rounds = flusher.get("sync_rounds", 0)
        return {
            "appended_entries": self.appended,
            "appended_bytes": self.appended_bytes,
            "entries_per_sync": round(self.appended / rounds, 1) if rounds else None,
            "path": self.path,
            "groups": self.group_count,
            "chunks": len(self.chunks),
            "oldest_chunk": self.chunks.chunks[0].start,
            "bytes_on_disk": self.end - self.chunks.chunks[0].start,  # the records (see reserve)
            "end": self.end,
            "synced": self.synced,
            "unsynced_bytes": self.end - self.synced,
            "failed": None if self.failed is None else str(self.failed),
            "full": None if self.full is None else str(self.full),
            "low": None if self.low is None else str(self.low),
            "pinning_chunk": None if pinning is None else pinning.start,
            "pinning_groups": self.pinning_groups(),
            "live_bytes": self.live_size(),  # entries and states
            "lagging_groups": self.lagging_groups(),
            "cache": self.cache.stat(),
            "flusher": flusher,
        }

    def close(self):
        self.flusher.close()
        self.readers.close()


def _scan(chunk, cursor, budget):
    """The groups that touched ``chunk``, from where its scan ``cursor`` (an
    attribute) stopped, at most SCAN_LIMIT of them and while ``budget[0]``
    (bytes to copy) lasts; the cursor moves on as they are taken."""
    touched = chunk.touched
    for _ in range(SCAN_LIMIT):
        at = getattr(chunk, cursor)
        if at >= len(touched) or budget[0] <= 0:
            return
        setattr(chunk, cursor, at + 1)
        yield touched[at]


def _footer_record(chunk, groups):
    """The footer sealing ``chunk``: each group it touched, with its state now
    and where its entries are (codec.FooterGroup)."""
    entries = []
    terms, offsets, sizes = array("Q"), array("Q"), array("Q")
    for group in chunk.touched:
        if groups.get(group.gid) is not group:
            entries.append(codec.FooterGroup(group.gid, None, 0, 0, 0))
            continue
        idx = group.index
        n = idx.positions()
        if n == idx.head:
            entries.append(codec.FooterGroup(group.gid, group.state(), 0, 0, 0))
            continue
        here = idx.find_offset(chunk.start, idx.head, n)
        first_here = idx.first + here - idx.head
        # Entries held from before the chunk end below the run; with none held,
        # none is kept (a truncate to nothing may have come, then a log
        # starting elsewhere).
        kept_end = first_here if here > idx.head else 0
        entries.append(codec.FooterGroup(group.gid, group.state(), kept_end, first_here, n - here))
        if here < n:
            terms += idx.term_column(here, n)
            offsets += idx.offset_column(here, n)
            sizes += idx.size_column(here, n)
    return codec.encode_footer(chunk.start, entries, terms, offsets, sizes)


def _deliver(callbacks, result):
    for callback in callbacks:
        try:
            callback(result)
        except Exception:
            log.exception("flush callback raised")
