"""The child of the write crash test: apply a list of writes to one namespace, acknowledging each one.

It runs under ``tests/crash_child.py``'s fork server (``python tests/add_child.py --serve``). A request is
``{"store", "namespace", "ops", "ack", "log", "crash"}``; each op is one call:

* ``{"n", "op": "add" | "upsert", "objects", "batch_size"}``: ``objects`` as ``add`` takes them;
* ``{"n", "op": "delete", "ids"}``;
* ``{"n", "op": "search", "query"}``: loads the namespace's index, so that later writes update it live;
* ``{"n", "op": "flush"}``: saves indexes with unsaved changes.

When a call has returned, the child appends ``n`` to the ``ack`` file and fsyncs it: an acknowledged op is
one whose call returned. At the end it closes the store (saving indexes and checkpointing) and exits 0.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import vecns
from tests.crash_child import serve


def _apply(store: vecns.Store, ns: vecns.Namespace, op: dict[str, Any]) -> None:
    kind = op["op"]
    if kind == "add":
        ns.add(op["objects"], batch_size=op["batch_size"])
    elif kind == "upsert":
        ns.upsert(op["objects"], batch_size=op["batch_size"])
    elif kind == "delete":
        ns.delete(op["ids"])
    elif kind == "search":
        ns.search(op["query"], k=3)
    elif kind == "flush":
        store.flush()
    else:
        raise ValueError(f"unknown op {kind!r}")


def write_flow(request: dict[str, Any]) -> int:
    """Apply the request's ops in order, acknowledging each; returns 0 once the store is closed."""
    ack = os.open(request["ack"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        store = vecns.connect(request["store"])
        try:
            ns = store.namespace(request["namespace"])
            for op in request["ops"]:
                _apply(store, ns, op)
                os.write(ack, f"{op['n']}\n".encode())
                os.fsync(ack)
        finally:
            store.close()
    finally:
        os.close(ack)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: add_child.py --serve")
    serve(write_flow)
