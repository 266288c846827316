"""The ingest loop: stream -> batch -> one INSERT -> commit -> XACK -> trim.

Three stages overlap: the reader (the calling thread) reads and checks the next batch
while the committer thread waits on MariaDB for the previous one, and the acker thread
acknowledges (XACK, trim) the one committed before that. At most one batch waits
between two stages, so memory stays bounded and a stalled database stalls reading.
Acks stay in commit order; an entry is acknowledged only after its row is committed.

Read top to bottom, the failure paths are:
- MariaDB away: the batch stays pending, retried with capped exponential backoff and
  jitter until it is written (or a stop is asked; then it stays pending for later).
- MariaDB stalled (a hung server, a lock held): every statement's socket read is
  bounded (ingest/__main__.py), so a stall becomes "away" after that bound.
- Redis away, or in any state it recovers from (a failover, CLUSTERDOWN, a demoted
  master, LOADING, a reshard: core/store/client.py classifies them all as
  Unavailable): wait with backoff and carry on; the client reads the slot map again.
  An ack that fails leaves its entries pending; they are reclaimed and rewritten,
  which is harmless because rows are keyed by stream entry id and only rows really
  added count in the range buckets (ingest/writer.py).
- Redis went back in time (the last second of an AOF with appendfsync everysec, a
  failover to a replica that lagged): og.events may hold events whose effects Redis
  lost (a followup's "+" on its conversation, the stats). After any Redis error, at
  start and every CATCH_UP_EVERY_S, the stored events past the stored mark that the
  stream lacks are given back to Redis (replay.lua): a retried followup is then a 409
  again, and the dashboards equal og.events. One the API accepted again before that is
  counted once in Redis and logged as a duplicate (og.events holds it twice). A master
  can also be demoted with no error on the worker's connections (stopped past the node
  timeout, then resumed: it answers as master until it hears of its successor), so for
  a while after a slot is seen to change master, catch-ups also judge the events stored
  since a little before the change.
- a poison entry: a malformed one goes to the dead-letter stream at once; one the
  database rejects stays pending, is retried on reclaim, and is dead-lettered once it
  has been delivered max_deliveries times. Neither blocks the rest of its batch.
- acknowledged entries left untrimmed (the node that acked them failed before its trim
  replicated): a running worker trims every partition on the catch-up's cadence too,
  not only after a batch of its own.
- a dead worker: its pending entries are reclaimed (XAUTOCLAIM) at start and every
  claim interval; once its consumer holds nothing and has been idle past
  consumer_idle_ms, it is removed from the group (forget_consumers.lua, atomic).
- the group recreated (Redis lost its data, or XGROUP DESTROY): reads and the trim see
  NOGROUP; the reader recreates the group from the stream's start, and a batch in
  flight stays unacknowledged, to be read again from the new group (rows are keyed by
  entry id, so nothing is stored twice).
- an error no retry can help (an unexpected reply: a bug): stop, leaving the batch
  pending, and exit 1, so a supervisor sees it and restarts the worker.
- SIGTERM: finish the batch in hand, ack, exit 0; a batch read but not yet handed over
  stays pending. A second SIGTERM stops at once (whatever was not acked stays pending
  and is reclaimed by the next worker).
"""
import logging
import queue
import random
import threading
import time

from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from core import event_store, keys
from core.store.codec import MalformedEntry, Rows
from ingest.writer import DatabaseUnavailable, statements

log = logging.getLogger("ingest")

IDLE_BLOCK_MS = 1000
"""Longest blocking read when idle: a stop request is seen within this."""
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
"""Retry delays grow 0.1, 0.2, 0.4 ... s up to this cap, each drawn with full jitter."""
CLUSTER_IDLE_POLL_S = 0.01
"""On a cluster, partitions live in different slots, so one XREADGROUP cannot block on
all of them: an idle worker polls them (one pipelined read per node) this often."""
GAUGE_EVERY_S = 1.0
"""How often the stream gauges (core/pipeline.collect) are read from Redis."""
REDIS_ERRORS = (ConnectionError, TimeoutError, OSError)
"""What Redis being away or in a passing state raises (core/store/client.Unavailable is
a ConnectionError)."""
CATCH_UP_EVERY_S = 5.0
"""How often (besides after a Redis error) the worker looks for events Redis lost."""
KEY_MARGIN_S = 60
"""An event is judged by its conversation key only while the key has this long to live."""
DEEP_AFTER_ERROR_S = 30.0
"""For this long after a Redis error, catch-ups also judge the events stored since a
little before it (a batch in flight may be committed late)."""
LOOKBACK_MS = 30_000
"""How far before the first error of an outage stored events are judged: what a node
had not yet replicated when it failed, seen by the worker up to its socket timeout
(10 s) later."""
HANDOVER_WAIT_S = 0.5
"""How often the reader, waiting to hand a batch to a busy committer, checks for a stop."""
ACK_CHUNK = 1000
"""Entry ids per ack.lua call (OG_INGEST_BATCH_SIZE may be up to 100,000)."""


class LayoutMismatch(Exception):
    """The store was made with another partition count: running would strand events."""


class Batch:
    def __init__(self, entries, rows, malformed):
        self.entries = entries      # [(partition, entry_id, fields)] as read
        self.rows = rows            # EventRows of the well-formed entries
        self.malformed = malformed  # [(partition, entry_id, fields, reason)]
        self.statements = statements(rows) if rows else None  # built off the committer


class Worker:
    def __init__(self, store, writer, name, partitions, batch_size, batch_ms,
                 claim_idle_ms, max_deliveries, metrics=None, consumer_idle_ms=60_000,
                 commit_store=None, conversation_ttl=3600):
        """`store`: the gateway the reader uses (core/store/gateway.py); `commit_store`:
        the acker's (its own client, so acks never queue behind a blocked read)."""
        self.store = store
        self.commit_store = commit_store or store
        self.writer = writer
        self.name = name
        self.partitions = partitions
        self.batch_size = batch_size
        self.batch_ms = batch_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.consumer_idle_ms = consumer_idle_ms
        self.conversation_ttl = conversation_ttl
        self.metrics = metrics
        self.rows = Rows()
        self.stopping = threading.Event()
        self._handover = queue.Queue(maxsize=1)  # reader -> committer
        self._acks = queue.Queue(maxsize=1)  # committer -> acker: (batch, rejected)
        self._ready = False
        self._claimed_at = 0.0
        self._forgot_at = 0.0
        self._gauges_at = 0.0
        self._caught_up_at = 0.0
        self._redis_failed_at = None  # monotonic time of the last Redis error
        self._suspect_from = None  # entry id from which stored events are judged deeply
        self._slot_changes = 0  # the stores' slot-map changes seen so far
        self._slot_changed_at = None  # monotonic time of the last one seen
        self._changed_from = None  # entry id from which that change's events are judged
        self.written = 0
        self.replayed = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.failed = None  # why the worker stopped by itself, if it did
        self.consumers_removed = 0

    def stop(self):
        self.stopping.set()

    def close(self):
        """Release its connections (after run() returned)."""
        for store in {id(self.store): self.store, id(self.commit_store): self.commit_store}.values():
            store.close()
        self.writer.close()

    def _fail(self, what):
        """An error no retry can help: stop, and let the exit status say so."""
        log.exception("ingest %s: %s", self.name, what)
        self.failed = what
        self.stop()

    # -- the reader ---------------------------------------------------------------

    def run(self, burst=False):
        """Drain until stopped; with burst, until nothing is left to write."""
        log.info("ingest %s: starting on %d partition(s)%s", self.name, self.partitions,
                 " (burst)" if burst else "")
        committer = threading.Thread(target=self._commit_loop, name="ingest-commit", daemon=True)
        committer.start()
        failures = 0
        try:
            while not self.stopping.is_set():
                try:
                    self._setup()
                    drained = self._pass(burst)
                    failures = 0
                    if burst and drained:
                        break
                except REDIS_ERRORS as error:
                    failures += 1
                    self._redis_failed()
                    self._count_retry("redis")
                    log.warning("ingest %s: redis unavailable (%s); retry %d", self.name, error, failures)
                    self._backoff(failures)
                except DatabaseUnavailable as error:
                    failures += 1
                    self._count_retry("database")
                    log.warning("ingest %s: database unavailable (%s); retry %d", self.name, error, failures)
                    self._backoff(failures)
                except ResponseError as error:
                    # NOGROUP, or UNBLOCKED when the stream vanished under a blocked read:
                    # Redis lost its data (or the stream was deleted). Recreate the groups.
                    if not str(error).startswith(("NOGROUP", "UNBLOCKED")):
                        raise
                    log.warning("ingest %s: stream or group missing (%s); recreating", self.name, error)
                    self._ready = False
        finally:
            self._hand_over(None, always=True)  # the batch in hand is finished first
            committer.join()
            self._leave_group()
        log.info("ingest %s: stopped; %d events written, %d dead-lettered",
                 self.name, self.written, self.dead_lettered)

    def _setup(self):
        if self._ready:
            return
        self._check_layout()
        self.writer.create_tables()
        self.store.create_groups()
        self._claimed_at = 0.0  # reclaim what dead consumers left, first thing
        self._gauges_at = 0.0  # and show the (new) group's figures at once
        self._ready = True

    def _check_layout(self):
        recorded = self.store.record_layout()
        if recorded != self.partitions:
            raise LayoutMismatch(keys.layout_mismatch(self.partitions, recorded))

    def _pass(self, burst):
        """Read one batch and hand it to the committer; True when there was none."""
        changes = sum(store.slot_map_changes() for store in {self.store, self.commit_store})
        now = time.monotonic()
        if changes != self._slot_changes:  # a failover (or a reshard) since the last pass
            # Unlike an outage's, this lookback moves with each change: what a silently
            # demoted master took is judged for DEEP_AFTER_ERROR_S after the change, and a
            # chaos of changes does not make every catch-up judge all events since the
            # first one. Catch-ups keep their cadence (a reshard changes the map on every
            # pass while it runs).
            self._slot_changes = changes
            self._slot_changed_at = now
            self._changed_from = f"{int(time.time() * 1000) - LOOKBACK_MS}-0"
        entries = []
        if now - self._claimed_at >= self.claim_idle_ms / 1000:
            entries = self._claim()
            self._claimed_at = now
        if not entries:
            entries = self._read(block=not burst)
        if not entries and burst:
            # Before calling it drained: let the batch in flight settle, then take back
            # what it left pending (rejected rows, after claim_idle_ms).
            self._handover.join()
            self._acks.join()
            entries = self._claim()
        if entries and not self._hand_over(self._prepare(entries)):
            return False  # stopping: what was read stays pending, reclaimed later
        if now - self._caught_up_at >= CATCH_UP_EVERY_S:
            self._catch_up([since for since, at in ((self._suspect_from, self._redis_failed_at),
                                                    (self._changed_from, self._slot_changed_at))
                            if at is not None and now - at < DEEP_AFTER_ERROR_S])
            self._caught_up_at = now
            if not burst:  # a burst's batches trim their partitions; it ends when dry
                # A master that failed after its acks reached its replica but before its
                # trim did leaves acknowledged entries that only a later batch of that
                # partition would trim: one that no write reaches again keeps them.
                self.store.trim(range(self.partitions))
        if now - self._forgot_at >= min(self.claim_idle_ms, self.consumer_idle_ms) / 1000:
            self._forgot_at = now
            self._forget_gone_consumers()
        if self.metrics and now - self._gauges_at >= GAUGE_EVERY_S:
            self._gauges_at = now
            self.metrics.observe_streams(self.store)
        return not entries

    def _hand_over(self, batch, always=False):
        """Give the committer `batch`; False if a stop came first while it was busy (a
        stalled database must not keep a stop waiting). `always`: wait regardless."""
        while True:
            try:
                self._handover.put(batch, timeout=HANDOVER_WAIT_S)
                return True
            except queue.Full:
                if self.stopping.is_set() and not always:
                    return False

    def _read(self, block):
        """Up to batch_size new entries: what is there, or after the first entry arrives,
        what arrived within batch_ms of it.

        Only the wait for a first entry blocks in Redis. The batch window is a plain
        sleep followed by one more read: Redis checks blocked-read timeouts only every
        1/hz s (100 ms by default), which made a 50 ms window last ~100 ms, and polling
        within the window cost Redis and worker CPU on every poll.
        """
        entries = self._read_once(self.batch_size, IDLE_BLOCK_MS if block else None)
        if block and entries and len(entries) < self.batch_size:
            self.stopping.wait(self.batch_ms / 1000)
            entries += self._read_once(self.batch_size - len(entries), None)
        return entries

    def _read_once(self, count, block_ms):
        if self.store.blocking_reads:
            return self.store.read(self.name, count, block_ms)
        return self._poll(count, block_ms)

    def _poll(self, count, block_ms):
        """Read each partition's stream without blocking (a multi-key XREADGROUP must stay
        in one slot); when `block_ms` is given, poll until something comes or it passes."""
        deadline = time.monotonic() + (block_ms or 0) / 1000
        while True:
            entries = self.store.read(self.name, count)  # one pipelined read per node
            if entries or block_ms is None or time.monotonic() >= deadline:
                return entries
            if self.stopping.wait(CLUSTER_IDLE_POLL_S):
                return []

    def _claim(self):
        """Entries idle past claim_idle_ms in any consumer (dead, or rejected rows)."""
        entries = self.store.claim(self.name, self.claim_idle_ms, self.batch_size)
        if entries:
            log.info("ingest %s: reclaimed %d pending entries", self.name, len(entries))
        return entries

    def _catch_up(self, deep_from=()):
        """Give Redis back the events og.events holds that Redis lost (it went back in
        time): lost.lua judges the stored events past each partition's stored mark and
        those since the oldest of `deep_from` (for a while after a Redis error or a slot
        change, entry ids from a little before it): acks on the node that took over may
        have moved the mark on."""
        now_us = int(time.time() * 1_000_000)
        for partition in range(self.partitions):
            mark = self.store.stored_mark(partition)
            if mark is None:  # nothing acknowledged yet, or Redis lost it all (rebuild)
                continue
            since = min([mark, *deep_from], key=event_store.entry_order)
            self._give_back(partition, since, now_us)

    def _give_back(self, partition, since, now_us):
        """Replay what lost.lua says Redis lost of the events stored after `since`."""
        stored = self.writer.events_after(partition, since)
        codes = self.store.lost(partition, stored) if stored else []
        # Code 2 is judged by the conversation key, which lives a window from its event:
        # only events well within the window can be judged so.
        judged_us = now_us - (self.conversation_ttl - KEY_MARGIN_S) * 1_000_000
        given = 0
        for event, code in zip(stored, codes):
            if not code or (code == 2 and event.ts_us < judged_us):
                continue
            age_s = (now_us - event.conversation_ts_us) // 1_000_000
            ttl = self.conversation_ttl if event.kind == "followup" else max(
                1, self.conversation_ttl - age_s)
            if self.store.replay(partition, event, ttl) == "applied":
                given += 1
            else:
                self.duplicates += 1
                log.error("ingest %s: %s of %s was accepted again after Redis lost it: "
                          "og.events holds it twice (entry %s of partition %d)", self.name,
                          event.kind, event.uuid, event.event_id, partition)
        if given:
            self.replayed += given
            log.warning("ingest %s: Redis had lost %d stored events of partition %d; "
                        "given back", self.name, given, partition)

    def _redis_failed(self):
        """What came back may have lost its last writes: catch up at once, deeply, from
        a little before the first error of this outage."""
        now = time.monotonic()
        if self._redis_failed_at is None or now - self._redis_failed_at >= DEEP_AFTER_ERROR_S:
            self._suspect_from = f"{int(time.time() * 1000) - LOOKBACK_MS}-0"
        self._redis_failed_at = now
        self._caught_up_at = 0.0

    def _forget_gone_consumers(self):
        """Remove the consumers of gone workers: nothing pending, idle past the bound
        (one atomic script per stream, so one holding entries is never removed)."""
        removed = self.store.forget_consumers(self.name, self.consumer_idle_ms)
        if removed:
            self.consumers_removed += len(removed)
            if self.metrics:
                self.metrics.removed_consumers(len(removed))
            log.info("ingest %s: removed %d gone consumer(s) from the group: %s",
                     self.name, len(removed), ", ".join(sorted(set(removed))))
        return removed

    def _prepare(self, entries):
        rows, malformed = [], []
        for partition, entry_id, fields in entries:
            try:
                rows.append(self.rows.row(partition, entry_id, fields))
            except MalformedEntry as error:
                malformed.append((partition, entry_id, fields, f"malformed: {error}"))
        return Batch(entries, rows, malformed)

    # -- the committer --------------------------------------------------------------

    def _commit_loop(self):
        acker = threading.Thread(target=self._ack_loop, name="ingest-ack", daemon=True)
        acker.start()
        try:
            while True:
                batch = self._handover.get()
                try:
                    if batch is None:
                        return
                    self._guarded(self._commit, batch)
                finally:
                    self._handover.task_done()
        finally:
            self._acks.put(None)  # the batch being acknowledged is finished first
            acker.join()

    def _ack_loop(self):
        while True:
            item = self._acks.get()
            try:
                if item is None:
                    return
                self._guarded(self._settle, *item)
            finally:
                self._acks.task_done()

    def _guarded(self, step, batch, *args):
        """step(batch, *args), a failure of which leaves the batch's entries pending."""
        try:
            step(batch, *args)
        except DatabaseUnavailable:
            log.warning("ingest %s: stopping during an outage; %d entries left pending",
                        self.name, len(batch.entries))
        except REDIS_ERRORS as error:
            self._redis_failed()
            log.warning("ingest %s: redis unavailable after the write (%s); %d entries left "
                        "pending, to be reclaimed", self.name, error, len(batch.entries))
        except ResponseError as error:
            # The group (or the stream) vanished under the batch: Redis lost its data
            # or the group was destroyed. The reader recreates it and reads these
            # entries again if they still exist; their rows are already in, keyed by
            # entry id, so the rewrite adds nothing.
            if "NOGROUP" not in str(error):
                self._fail("commit failed; entries left pending")
            else:
                log.warning("ingest %s: consumer group gone after the write (%s); the rows "
                            "of these %d entries are in, and those still in the stream are "
                            "read again by the new group", self.name, error, len(batch.entries))
        except Exception:  # never let the committer die silently with the reader going on
            self._fail("commit failed; entries left pending")

    def _commit(self, batch):
        started = time.monotonic()
        written, rejected = self._write(batch.rows, batch.statements)
        self.written += written  # rows added; a redelivered entry is acked but adds none
        if self.metrics:
            self.metrics.batch(written, time.monotonic() - started)
        self._acks.put((batch, rejected))

    def _settle(self, batch, rejected):
        """Acknowledge what is committed; rejected rows stay pending (or are buried)."""
        unwritten = {(rejection.row.stream, rejection.row.event_id) for rejection in rejected}
        unwritten |= {(p, i) for p, i, _, _ in batch.malformed}
        self._ack([(p, i) for p, i, _ in batch.entries if (p, i) not in unwritten])
        for partition, entry_id, fields, reason in batch.malformed:
            self._bury(partition, entry_id, fields, reason)  # retrying cannot help
        fields_of = {(p, i): f for p, i, f in batch.entries}
        for row, reason, final in rejected:
            key = (row.stream, row.event_id)
            if final or self._deliveries(*key) >= self.max_deliveries:
                self._bury(*key, fields_of[key], reason)
            else:
                log.warning("ingest %s: entry %s rejected (%s); left pending for retry",
                            self.name, key[1], reason)
        self.commit_store.trim({p for p, _, _ in batch.entries})
        log.debug("ingest %s: acknowledged %d entries", self.name, len(batch.entries))

    def _write(self, rows, prepared=None):
        """Write until written; a stop request during an outage leaves them pending."""
        failures = 0
        while True:
            try:
                return self.writer.write(rows, prepared)
            except DatabaseUnavailable as error:
                failures += 1
                self._count_retry("database")
                if self.stopping.is_set():
                    raise
                log.warning("ingest %s: database unavailable (%s); batch of %d kept, retry %d",
                            self.name, error, len(rows), failures)
                self._backoff(failures)

    def _ack(self, done):
        by_partition = {}
        for partition, entry_id in done:
            by_partition.setdefault(partition, []).append(entry_id)
        # One script per partition (its keys share a slot): XACK and the undrained
        # counter move together. In chunks: Lua's unpack() refuses ~8,000 values.
        for partition, ids in by_partition.items():
            for at in range(0, len(ids), ACK_CHUNK):
                self.commit_store.ack(partition, ids[at:at + ACK_CHUNK])

    def _deliveries(self, partition, entry_id):
        return self.commit_store.deliveries(partition, entry_id)

    def _bury(self, partition, entry_id, fields, reason):
        if self.commit_store.bury(partition, entry_id, fields, reason):
            self.dead_lettered += 1
            if self.metrics:
                self.metrics.dead_letter()
            log.error("ingest %s: entry %s of partition %d dead-lettered: %s",
                      self.name, entry_id, partition, reason)

    # -- leaving, waiting ---------------------------------------------------------

    def _leave_group(self):
        """Deregister this consumer if it holds nothing; otherwise its entries stay claimable."""
        try:
            self.store.leave(self.name)
        except (*REDIS_ERRORS, ResponseError):
            pass  # a leftover consumer name is harmless

    def _backoff(self, failures):
        delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(failures, 20)))
        self.stopping.wait(delay)

    def _count_retry(self, reason):
        if self.metrics:
            self.metrics.retry(reason)
