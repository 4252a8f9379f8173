r"""A queue of deletion requests applied in batches.

Production systems collect deletion requests and honour them within a
deadline; applying the pending ones together costs about one request's
solve (see :meth:`~torch_geometric_unlearn.unlearn.base.Unlearner.
unlearn_batch`) instead of one solve each.
"""
import time
from typing import Callable, Dict, List, Optional

from torch import Tensor

from torch_geometric_unlearn.unlearn.base import Unlearner, UnlearnResult
from torch_geometric_unlearn.unlearn.request import RequestError


class RequestQueue:
    r"""Collects requests for an :class:`~torch_geometric_unlearn.
    unlearner.Unlearner` and applies them as one batch when they are due.

    Args:
        unlearner (Unlearner): The unlearner that applies the batches.
        max_requests (int, optional): Due once this many requests wait.
        max_wait (float, optional): Due once the oldest request has waited
            this many seconds (check with :meth:`poll`).
        clock (Callable[[], float]): The time source, in seconds.

    Example:

    .. code-block:: python

        queue = RequestQueue(unlearner, max_requests=100, max_wait=3600)
        ticket = queue.submit(users=torch.tensor([42]))
        ...
        result = queue.poll()  # None until due
        if result is not None:
            pairs_of_42 = result.batch[queue.last_tickets.index(ticket)]
    """
    def __init__(self, unlearner: Unlearner,
                 max_requests: Optional[int] = None,
                 max_wait: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        if not isinstance(unlearner, Unlearner):
            raise TypeError(f"'unlearner' must be an Unlearner (got "
                            f"{type(unlearner).__name__})")
        if max_requests is not None and (
                not isinstance(max_requests, int) or
                isinstance(max_requests, bool) or max_requests < 1):
            raise ValueError(f"'max_requests' must be an int >= 1 (got "
                             f"{max_requests!r})")
        if max_wait is not None and (
                isinstance(max_wait, bool) or
                not isinstance(max_wait, (int, float)) or
                not 0 <= max_wait < float('inf')):
            raise ValueError(f"'max_wait' must be a finite number of "
                             f"seconds >= 0 (got {max_wait!r})")
        self.unlearner = unlearner
        self.max_requests, self.max_wait = max_requests, max_wait
        self.clock = clock
        self._pending: List[Dict[str, Tensor]] = []
        self._tickets: List[int] = []
        self._since: Optional[float] = None
        self._next_ticket = 0
        #: The tickets of the last applied batch, in the order of
        #: :attr:`UnlearnResult.batch`.
        self.last_tickets: List[int] = []

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, interactions: Optional[Tensor] = None, *,
               users: Optional[Tensor] = None,
               items: Optional[Tensor] = None,
               edge_index: Optional[Tensor] = None) -> int:
        r"""Adds a request (the arguments of :meth:`Unlearner.unlearn`) and
        returns its ticket.  It is checked against the current state now,
        so a malformed request is refused here, not at the deadline.

        Raises:
            RequestError: If the request cannot be carried out; the queue
                is unchanged.
        """
        spec = {k: v for k, v in (('interactions', interactions),
                                  ('users', users), ('items', items),
                                  ('edge_index', edge_index))
                if v is not None}
        pairs = self.unlearner._resolve(interactions, users, items,
                                        edge_index)
        if pairs.size(1):
            self.unlearner._request(pairs)
        ticket = self._next_ticket
        self._next_ticket += 1
        self._pending.append(spec)
        self._tickets.append(ticket)
        if self._since is None:
            self._since = self.clock()
        return ticket

    @property
    def due(self) -> bool:
        r"""Whether the pending requests have reached a limit."""
        if not self._pending:
            return False
        if self.max_requests is not None and \
                len(self._pending) >= self.max_requests:
            return True
        return self.max_wait is not None and \
            self.clock() - self._since >= self.max_wait

    def poll(self) -> Optional[UnlearnResult]:
        r"""Applies the pending requests if they are :attr:`due`."""
        return self.flush() if self.due else None

    def flush(self) -> Optional[UnlearnResult]:
        r"""Applies every pending request now, as one batch (:obj:`None`
        when none waits).  On any error nothing is changed and the
        requests stay pending; a request that became invalid meanwhile is
        named by its ticket."""
        if not self._pending:
            return None
        try:
            result = self.unlearner.unlearn_batch(self._pending)
        except RequestError as error:
            if error.position is None:
                raise
            ticket = self._tickets[error.position]
            failed = type(error)(str(error).replace(
                f'request {error.position}:', f'ticket {ticket}:', 1))
            failed.position = error.position
            raise failed from None
        self.last_tickets = self._tickets
        self._pending, self._tickets, self._since = [], [], None
        return result
