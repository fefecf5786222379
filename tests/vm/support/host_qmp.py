"""The guest's side of scripts/vm --qmp: QMP commands run by the host.

A test in the guest writes a request file into $DMAKIT_VM_QMP; the host's
scripts/lib/qmp-agent executes it on QEMU's monitor and writes the reply next
to it. QMP events land in events.jsonl there. Outside `scripts/vm --qmp` there
is no folder, and every call fails: a fault test never passes without faults.
"""
import itertools
import json
import os
import time

_ids = itertools.count()


class QmpError(RuntimeError):
    pass


def folder():
    path = os.environ.get("DMAKIT_VM_QMP", "")
    if not path or not os.path.isdir(path):
        raise QmpError("DMAKIT_VM_QMP is not set: run this under scripts/vm --qmp")
    return path


def execute(command, timeout=60, **arguments):
    """Runs one QMP command on the host; returns its "return" value."""
    base = os.path.join(folder(), f"{os.getpid()}-{next(_ids)}")
    request = {"execute": command}
    if arguments:
        request["arguments"] = arguments
    with open(base + ".tmp", "w") as f:
        json.dump(request, f)
    os.rename(base + ".tmp", base + ".request")
    deadline = time.monotonic() + timeout
    while not os.path.exists(base + ".reply"):
        if time.monotonic() > deadline:
            raise QmpError(f"no reply to {command} within {timeout} s (is scripts/lib/qmp-agent running?)")
        time.sleep(0.05)
    with open(base + ".reply") as f:
        reply = json.load(f)
    os.unlink(base + ".reply")
    if "error" in reply:
        raise QmpError(f"{command} {arguments}: {reply['error'].get('desc', reply['error'])}")
    return reply.get("return")


def events(name=None):
    """Every QMP event so far (of one name, if given)."""
    path = os.path.join(folder(), "events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        seen = [json.loads(line) for line in f if line.strip()]
    return [e for e in seen if name is None or e.get("event") == name]


def wait_event(name, timeout, **data):
    """Waits for an event whose data has the given fields; returns it or None."""
    deadline = time.monotonic() + timeout
    while True:
        for e in events(name):
            if all(e.get("data", {}).get(k) == v for k, v in data.items()):
                return e
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def device_present(qdev):
    """Whether QEMU still has a device with this id (under /machine/peripheral)."""
    return any(child.get("name") == qdev for child in execute("qom-list", path="/machine/peripheral"))


def wait_removed(qdev, timeout):
    """Waits until QEMU has deleted device `qdev`. Returns how that showed:
    "event" (DEVICE_DELETED), "gone" (no event yet, but the id has left
    QEMU's device tree: QEMU sends the event only once the last reference to
    the device is dropped, which can come later) or None (still there)."""
    deadline = time.monotonic() + timeout
    while True:
        if wait_event("DEVICE_DELETED", 0, device=qdev) is not None:
            return "event"
        if not device_present(qdev):
            return "gone"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)
