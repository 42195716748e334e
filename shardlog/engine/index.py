"""Where each live entry of a group is: its term, its record's offset, its size.

Entries of a group are consecutive indexes, so the index is three parallel
``array``s (term, global offset of the Append record, payload length) and the
index of the first element: 20 bytes per entry and no Python object per entry.
Purging moves a head pointer; the arrays are compacted only when the dead head
outweighs the live part, so a purge costs O(1) amortized.
"""

from array import array


class EntryIndex:
    __slots__ = ("first", "head", "terms", "offsets", "sizes")

    def __init__(self, first=0, columns=None):
        #: Log index of the element at ``head``.
        self.first = first
        #: Position in the arrays of the first live entry.
        self.head = 0
        if columns is None:
            self.terms, self.offsets, self.sizes = array("Q"), array("Q"), array("I")
        else:
            self.terms, self.offsets, self.sizes = columns

    def __len__(self):
        return len(self.terms) - self.head

    @property
    def last_index(self):
        """Index of the last live entry, or None when the index is empty."""
        n = len(self.terms) - self.head
        return self.first + n - 1 if n else None

    def next_index(self):
        return self.first + len(self.terms) - self.head

    def start_at(self, index):
        """Make an empty index start at ``index`` (the first append of a group)."""
        if len(self):
            raise ValueError("index is not empty")
        self.clear()
        self.first = index

    def append(self, index, term, offset, size):
        if len(self) == 0:
            self.start_at(index)
        elif index != self.next_index():
            raise ValueError(f"index {index} does not follow {self.last_index}")
        self.terms.append(term)
        self.offsets.append(offset)
        self.sizes.append(size)

    def position(self, index):
        """Array position of ``index``, or None if it is not live."""
        pos = index - self.first + self.head
        if index < self.first or pos >= len(self.terms):
            return None
        return pos

    def term_at(self, index):
        pos = self.position(index)
        return None if pos is None else self.terms[pos]

    def offset_at(self, index):
        pos = self.position(index)
        return None if pos is None else self.offsets[pos]

    def locate(self, index):
        """``(term, record offset, payload size)`` of a live entry."""
        pos = self.position(index)
        if pos is None:
            raise KeyError(index)
        return self.terms[pos], self.offsets[pos], self.sizes[pos]

    def span_after(self, index):
        """Array positions ``(start, end)`` of the entries above ``index``."""
        end = len(self.terms)
        return (min(max(index + 1 - self.first, 0) + self.head, end), end)

    def span_upto(self, index):
        """Array positions ``(start, end)`` of the entries up to ``index``."""
        start = self.head
        return (start, min(max(index + 1 - self.first, 0) + start, len(self.terms)))

    def cut_tail(self, start, next_first):
        """Drop the array positions from ``start`` on (see span_after).

        ``next_first`` is where the next append must land if nothing is left.
        """
        if start < len(self.terms):
            del self.terms[start:], self.offsets[start:], self.sizes[start:]
        if len(self.terms) <= self.head:
            self.clear()
            self.first = next_first

    def cut_head(self, end, next_first):
        """Drop the array positions below ``end`` (see span_upto).

        ``next_first`` is where the next append must land if nothing is left.
        """
        if end > self.head:
            self.first += end - self.head
            self.head = end
        if self.head == len(self.terms):
            self.clear()
            self.first = next_first
        elif self.head > 4096 and self.head * 2 > len(self.terms):
            self._compact()

    def clear(self):
        self.head = 0
        del self.terms[:], self.offsets[:], self.sizes[:]

    def _compact(self):
        h = self.head
        del self.terms[:h], self.offsets[:h], self.sizes[:h]
        self.head = 0

    def first_offset(self):
        """Offset of the oldest live record, or None: what pins the oldest chunk."""
        return self.offsets[self.head] if len(self) else None

    def nbytes(self):
        """Memory the arrays hold, allocation slack included."""
        return sum(a.buffer_info()[1] * a.itemsize for a in (self.terms, self.offsets, self.sizes))
