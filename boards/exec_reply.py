"""Reply writing shared by the bridge's command executors (``MemAccess``, ``SpikeExec``,
``ReplyExec``): each owns ``status`` and the reply port ``tx_en``/``tx_addr``/``tx_data``."""

from __future__ import annotations

__all__ = ["reply_writers"]


def reply_writers(m, exe, tptr):
    """``(finish, put)`` for executor ``exe`` inside its FSM: ``finish(status)`` latches the
    status and goes to ``DONE``; ``put(value)`` writes reply byte ``tptr`` this cycle and
    advances ``tptr``."""

    def finish(status):
        m.d.sync += exe.status.eq(status)
        m.next = "DONE"

    def put(value):
        m.d.comb += [exe.tx_en.eq(1), exe.tx_addr.eq(tptr), exe.tx_data.eq(value)]
        m.d.sync += tptr.eq(tptr + 1)

    return finish, put
