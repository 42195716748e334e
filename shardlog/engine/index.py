"""Where each live entry of a group is: its term, its record's offset, its size.

Entries of a group are consecutive indexes, so the index is the index of the
first element and two columns with no Python object per entry:

- ``places``, one ``array("Q")`` holding each entry's record offset and
  payload size side by side (``[offset0, size0, offset1, size1, ...]``). One
  array rather than two: at a million groups, a second array is 80 MB of
  array headers and allocations.
- ``terms``: an ``int`` while every entry at a position has that term (a
  Raft log's entries share a term for long runs), else an ``array("Q")`` of
  *term runs* ``[position0, term0, position1, term1, ...]``, position0 being
  0: where each term starts. So the index is 16 bytes per entry whatever
  the terms.

Purging moves a head pointer; the columns are compacted only when the dead
head outweighs the live part, so a purge costs O(1) amortized. Positions count
from the start of the columns, dead head included. Code outside this module
goes through the methods below, but for two hot loops that read the columns
as they are: the disk's append (it adds to ``places``) and the open's loops
over every group (recovery.py).
"""

from array import array


class EntryIndex:
    __slots__ = ("first", "head", "terms", "places")

    def __init__(self, first=0, terms=0, places=None):
        """An index of ``places`` and ``terms`` as this module keeps them (see
        ``reset`` for columns of one term per entry)."""
        self.first, self.head, self.terms = first, 0, terms
        self.places = array("Q") if places is None else places

    def reset(self, first, terms, offsets, sizes):
        """Hold the columns ``terms`` (one term per entry), ``offsets`` and
        ``sizes`` (arrays), ``first`` the index of their first entry."""
        #: Log index of the element at ``head``.
        self.first = first
        #: Position of the first live entry.
        self.head = 0
        self.places = interleave(offsets, sizes)
        self.terms = term_runs(terms)

    def __len__(self):
        return (len(self.places) >> 1) - self.head

    def positions(self):
        """Positions in the columns, the dead head included: the position after the last."""
        return len(self.places) >> 1

    @property
    def last_index(self):
        """Index of the last live entry, or None when the index is empty."""
        n = (len(self.places) >> 1) - self.head
        return self.first + n - 1 if n else None

    def next_index(self):
        return self.first + (len(self.places) >> 1) - self.head

    def start_at(self, index, term=0):
        """Make an empty index start at ``index`` (the first append of a group),
        with ``term`` the term of the entries to come."""
        if len(self):
            raise ValueError("index is not empty")
        self.clear()
        self.first = index
        self.terms = term

    def append(self, index, term, offset, size):
        if len(self) == 0:
            self.start_at(index, term)
        elif index != self.next_index():
            raise ValueError(f"index {index} does not follow {self.last_index}")
        self.add_term(term)
        places = self.places
        places.append(offset)
        places.append(size)

    def add_term(self, term):
        """The term of the entry about to be added at the next position: the
        one place a new term run starts."""
        terms = self.terms
        if terms.__class__ is int:
            if term != terms:
                self.terms = array("Q", (0, terms, len(self.places) >> 1, term))
        elif term != terms[-1]:
            terms.append(len(self.places) >> 1)
            terms.append(term)

    def extend(self, terms, offsets, sizes):
        """Add columns of entries (``terms`` one per entry) after the last position."""
        if not len(offsets):
            return
        if not len(self.places):
            self.places = interleave(offsets, sizes)
            self.terms = term_runs(terms)
            return
        at = len(self.places) >> 1
        self.places += interleave(offsets, sizes)
        for k, term in _starts(terms):
            self._term_from(at + k, term)

    def _term_from(self, pos, term):
        terms = self.terms
        if terms.__class__ is int:
            if term != terms:
                self.terms = array("Q", (0, terms, pos, term))
        elif term != terms[-1]:
            terms.append(pos)
            terms.append(term)

    # ------------------------------------------------------------------ reading

    def position(self, index):
        """Position of ``index``, or None if it is not live."""
        pos = index - self.first + self.head
        if index < self.first or pos >= len(self.places) >> 1:
            return None
        return pos

    def term_at(self, index):
        pos = self.position(index)
        if pos is None:
            return None
        terms = self.terms
        return terms if terms.__class__ is int else _run_term(terms, pos)

    def offset_at(self, index):
        pos = self.position(index)
        return None if pos is None else self.places[2 * pos]

    def locate(self, index):
        """``(term, record offset, payload size)`` of a live entry."""
        pos = self.position(index)
        if pos is None:
            raise KeyError(index)
        terms, places = self.terms, self.places
        return (terms if terms.__class__ is int else _run_term(terms, pos)), places[2 * pos], places[2 * pos + 1]

    def offset(self, pos):
        return self.places[2 * pos]

    def size(self, pos):
        return self.places[2 * pos + 1]

    def last_term(self):
        """Term of the last live entry (the index must not be empty)."""
        terms = self.terms
        return terms if terms.__class__ is int else terms[-1]

    def first_term(self):
        """Term of the first live entry (the index must not be empty)."""
        terms = self.terms
        return terms if terms.__class__ is int else _run_term(terms, self.head)

    def term_column(self, start, end):
        """Terms of positions ``[start, end)``, one per entry, as an ``array("Q")``."""
        terms = self.terms
        if terms.__class__ is int:
            return array("Q", (terms,)) * (end - start)
        out = array("Q")
        runs = len(terms)
        j = 2 * _run_at(terms, start)  # from the run holding ``start``, not the first
        while j < runs and terms[j] < end:
            lo = max(terms[j], start)
            hi = min(terms[j + 2] if j + 2 < runs else end, end)
            out += array("Q", (terms[j + 1],)) * (hi - lo)
            j += 2
        return out

    def offset_column(self, start, end):
        """Record offsets of positions ``[start, end)``, as an ``array("Q")``."""
        return self.places[2 * start:2 * end:2]

    def size_column(self, start, end):
        """Payload sizes of positions ``[start, end)``, as an ``array("Q")``."""
        return self.places[2 * start + 1:2 * end:2]

    def payload_bytes(self, start, end):
        """Payload bytes of positions ``[start, end)``."""
        return sum(self.places[2 * start + 1:2 * end:2])

    def find_offset(self, offset, start, end):
        """The first position in ``[start, end)`` whose record is at or after
        ``offset`` (``end`` if none): offsets grow along a group's positions."""
        places = self.places
        while start < end:
            mid = (start + end) >> 1
            if places[2 * mid] < offset:
                start = mid + 1
            else:
                end = mid
        return start

    def move(self, start, offsets):
        """The records of positions from ``start`` on are now at ``offsets`` (a relocation)."""
        self.places[2 * start:2 * (start + len(offsets)):2] = offsets

    def span_after(self, index):
        """Positions ``(start, end)`` of the entries above ``index``."""
        end = len(self.places) >> 1
        return (min(max(index + 1 - self.first, 0) + self.head, end), end)

    def span_upto(self, index):
        """Positions ``(start, end)`` of the entries up to ``index``."""
        start = self.head
        return (start, min(max(index + 1 - self.first, 0) + start, len(self.places) >> 1))

    # ------------------------------------------------------------------ dropping

    def cut_tail(self, start, next_first):
        """Drop the positions from ``start`` on (see span_after).

        ``next_first`` is where the next append must land if nothing is left.
        """
        if start < len(self.places) >> 1:
            del self.places[2 * start:]
            terms = self.terms
            if terms.__class__ is not int:
                j = len(terms) - 2
                while j > 0 and terms[j] >= start:
                    j -= 2
                del terms[j + 2:]
        if len(self.places) >> 1 <= self.head:
            self.clear()
            self.first = next_first
        else:
            self._fold_terms()

    def cut_head(self, end, next_first):
        """Drop the positions below ``end`` (see span_upto).

        ``next_first`` is where the next append must land if nothing is left.
        """
        if end > self.head:
            self.first += end - self.head
            self.head = end
        n = len(self.places) >> 1
        if self.head == n:
            self.clear()
            self.first = next_first
        elif self.head > 4096 and self.head * 2 > n:
            self._compact()
        else:
            self._fold_terms()

    def clear(self):
        self.head = 0
        self.terms = 0
        del self.places[:]

    def _compact(self):
        h = self.head
        del self.places[:2 * h]
        terms = self.terms
        if terms.__class__ is not int:
            j = 0  # the run holding the new position 0, and those after it, stay
            while j + 2 < len(terms) and terms[j + 2] <= h:
                j += 2
            del terms[:j]
            terms[0] = 0
            for k in range(2, len(terms), 2):
                terms[k] -= h
        self.head = 0
        self._fold_terms()

    def _fold_terms(self):
        """Back to one number once the live entries share a term again."""
        terms = self.terms
        if terms.__class__ is not int and terms[-2] <= self.head:
            self.terms = terms[-1]

    def first_offset(self):
        """Offset of the oldest live record, or None: what pins the oldest chunk."""
        return self.places[2 * self.head] if len(self) else None

    def nbytes(self):
        """Memory the columns hold, allocation slack included."""
        columns = (self.places,) if self.terms.__class__ is int else (self.terms, self.places)
        return sum(a.buffer_info()[1] * a.itemsize for a in columns)


def interleave(offsets, sizes):
    """The ``places`` column of ``offsets`` and ``sizes`` (arrays of one length)."""
    n = len(offsets)
    if n == 1:
        return array("Q", (offsets[0], sizes[0]))
    places = array("Q", bytes(16 * n))
    places[0::2] = offsets if offsets.typecode == "Q" else array("Q", offsets)
    places[1::2] = sizes if sizes.typecode == "Q" else array("Q", sizes)
    return places


def term_runs(terms):
    """The terms column of ``terms`` (one per entry): an int if they are all one."""
    n = len(terms)
    if not n:
        return 0
    first = terms[0]
    if terms[n - 1] == first and terms.count(first) == n:
        return first
    runs = array("Q")
    for pos, term in _starts(terms):
        runs.append(pos)
        runs.append(term)
    return runs


def _starts(terms):
    """``(position, term)`` where each run of equal terms starts."""
    prev = None
    for pos, term in enumerate(terms):
        if term != prev:
            yield pos, term
            prev = term


def _run_term(runs, pos):
    """The term at ``pos`` in term runs."""
    return runs[2 * _run_at(runs, pos) + 1]


def _run_at(runs, pos):
    """The number of the run holding ``pos``: the last one starting at or before it."""
    lo, hi = 0, len(runs) >> 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if runs[2 * mid] <= pos:
            lo = mid
        else:
            hi = mid
    return lo
