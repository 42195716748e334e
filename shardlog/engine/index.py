"""Where each live entry of a group is: its term, its record's offset, its size.

Entries of a group are consecutive indexes, so the index is parallel columns
(term, global offset of the Append record, payload length) and the index of
the first element: at most 20 bytes per entry and no Python object per entry.
Purging moves a head pointer; the columns are compacted only when the dead
head outweighs the live part, so a purge costs O(1) amortized.

The terms column is usually one number. A Raft log's entries share a term
for long runs, and at a million groups a terms ``array`` each is 80 MB of
array headers for nothing, so ``terms`` holds an ``int`` while every entry
at an array position has that term, and an ``array("Q")`` once they differ.
``offsets`` is the column that counts positions. Code outside this module
reads terms through ``term_at``, ``locate``, ``last_term`` and
``term_column``, never ``terms`` itself.
"""

from array import array


class EntryIndex:
    __slots__ = ("first", "head", "terms", "offsets", "sizes")

    def __init__(self, first=0, columns=None):
        self.reset(first, columns or (array("Q"), array("Q"), array("I")))

    def reset(self, first, columns):
        """Hold ``columns`` (terms, offsets, sizes: arrays), ``first`` the index of their first entry."""
        #: Log index of the element at ``head``.
        self.first = first
        #: Position in the columns of the first live entry.
        self.head = 0
        terms, self.offsets, self.sizes = columns
        self.terms = _folded(terms)

    def __len__(self):
        return len(self.offsets) - self.head

    @property
    def last_index(self):
        """Index of the last live entry, or None when the index is empty."""
        n = len(self.offsets) - self.head
        return self.first + n - 1 if n else None

    def next_index(self):
        return self.first + len(self.offsets) - self.head

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
        self.offsets.append(offset)
        self.sizes.append(size)

    def add_term(self, term):
        """The term of the entry about to be added at the next position: the
        one place the terms column turns from one number into an array."""
        terms = self.terms
        if terms.__class__ is int:
            if term != terms:
                self.spread_terms().append(term)
        else:
            terms.append(term)

    def spread_terms(self):
        """The terms column as an array (one term per position), made so if needed."""
        terms = self.terms
        if terms.__class__ is int:
            terms = self.terms = array("Q", (terms,)) * len(self.offsets)
        return terms

    def extend(self, terms, offsets, sizes):
        """Add columns of entries (``terms`` an array) after the last position."""
        own = self.terms
        if own.__class__ is int and not len(self.offsets):
            own = self.terms = _folded(terms)
        elif own.__class__ is int and terms.count(own) == len(terms):
            pass
        else:
            self.spread_terms().extend(terms)
        self.offsets.extend(offsets)
        self.sizes.extend(sizes)

    def position(self, index):
        """Array position of ``index``, or None if it is not live."""
        pos = index - self.first + self.head
        if index < self.first or pos >= len(self.offsets):
            return None
        return pos

    def term_at(self, index):
        pos = self.position(index)
        if pos is None:
            return None
        terms = self.terms
        return terms if terms.__class__ is int else terms[pos]

    def offset_at(self, index):
        pos = self.position(index)
        return None if pos is None else self.offsets[pos]

    def locate(self, index):
        """``(term, record offset, payload size)`` of a live entry."""
        pos = self.position(index)
        if pos is None:
            raise KeyError(index)
        terms = self.terms
        return terms if terms.__class__ is int else terms[pos], self.offsets[pos], self.sizes[pos]

    def last_term(self):
        """Term of the last live entry (the index must not be empty)."""
        terms = self.terms
        return terms if terms.__class__ is int else terms[-1]

    def term_column(self, start, end):
        """Terms of array positions ``[start, end)``, as an array."""
        terms = self.terms
        if terms.__class__ is int:
            return array("Q", (terms,)) * (end - start)
        return terms[start:end]

    def span_after(self, index):
        """Array positions ``(start, end)`` of the entries above ``index``."""
        end = len(self.offsets)
        return (min(max(index + 1 - self.first, 0) + self.head, end), end)

    def span_upto(self, index):
        """Array positions ``(start, end)`` of the entries up to ``index``."""
        start = self.head
        return (start, min(max(index + 1 - self.first, 0) + start, len(self.offsets)))

    def cut_tail(self, start, next_first):
        """Drop the array positions from ``start`` on (see span_after).

        ``next_first`` is where the next append must land if nothing is left.
        """
        if start < len(self.offsets):
            del self.offsets[start:], self.sizes[start:]
            if self.terms.__class__ is not int:
                del self.terms[start:]
        if len(self.offsets) <= self.head:
            self.clear()
            self.first = next_first
        else:
            self._fold_terms()

    def cut_head(self, end, next_first):
        """Drop the array positions below ``end`` (see span_upto).

        ``next_first`` is where the next append must land if nothing is left.
        """
        if end > self.head:
            self.first += end - self.head
            self.head = end
        if self.head == len(self.offsets):
            self.clear()
            self.first = next_first
        elif self.head > 4096 and self.head * 2 > len(self.offsets):
            self._compact()
        else:
            self._fold_terms()

    def clear(self):
        self.head = 0
        self.terms = 0
        del self.offsets[:], self.sizes[:]

    def _compact(self):
        h = self.head
        del self.offsets[:h], self.sizes[:h]
        if self.terms.__class__ is not int:
            del self.terms[:h]
        self.head = 0
        self._fold_terms()

    def _fold_terms(self):
        """Back to one number once the live entries share a term again.

        Raft's terms do not go down along a log, so the first and last live
        terms being equal nearly always settles it; counting makes sure."""
        terms = self.terms
        if terms.__class__ is int:
            return
        head, term = self.head, terms[-1]
        if terms[head] != term:
            return
        live = terms[head:] if head else terms
        if live.count(term) == len(live):
            self.terms = term

    def first_offset(self):
        """Offset of the oldest live record, or None: what pins the oldest chunk."""
        return self.offsets[self.head] if len(self) else None

    def nbytes(self):
        """Memory the columns hold, allocation slack included."""
        columns = (self.offsets, self.sizes) if self.terms.__class__ is int else (self.terms, self.offsets,
                                                                                   self.sizes)
        return sum(a.buffer_info()[1] * a.itemsize for a in columns)


def _folded(terms):
    """A terms column as one number when every position has the same term."""
    if len(terms) and terms.count(terms[0]) == len(terms):
        return terms[0]
    return terms if len(terms) else 0
