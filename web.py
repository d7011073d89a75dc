"""The web process (the Procfile's ``web``): the API and the CDP relay on one port, under gevent.

The one module that knows both ``app`` and ``proxy``: it builds the Flask app and
hands it to the relay's server, so neither package imports the other.
"""
from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402

import gevent  # noqa: E402

from app import create_app  # noqa: E402
from core.config import load  # noqa: E402
from core.logs import configure as configure_logging  # noqa: E402
from core.download_archive import sweep_forever  # noqa: E402
from core.recordings import Recordings, sweep_forever as sweep_recordings_forever  # noqa: E402
from core.orphan_files import OrphanFiles, sweep_forever as sweep_orphans_forever  # noqa: E402
from core.snapshots import open_snapshot_store  # noqa: E402
from core.reaping import LostWorkerReaper, reap_forever  # noqa: E402
from core.store import Store  # noqa: E402
from proxy.metrics import RelayFigures  # noqa: E402
from proxy.registry import RelayRegistry  # noqa: E402
from proxy.server import serve  # noqa: E402


def main() -> None:
    config = load()
    configure_logging(config)
    store = Store(config)
    relays = RelayRegistry()
    app = create_app(config, store, collectors=[RelayFigures(relays)])
    app.extensions["broker.machine"].dispatcher.connect()
    # Reaping needs no live worker: the only worker's sessions end as worker_lost too, or move from their checkpoints
    # (the machine's dispatcher sends the relaunch), core/reaping.py.
    gevent.spawn(reap_forever, LostWorkerReaper(app.extensions["broker.machine"]), gevent.sleep)
    gevent.spawn(sweep_forever, app.extensions["broker.files"].archive, store, gevent.sleep)
    gevent.spawn(sweep_recordings_forever, Recordings(open_snapshot_store(config), store), gevent.sleep)
    # Snapshots and download archives whose record Redis lost are deleted after a grace (core/orphan_files.py).
    gevent.spawn(sweep_orphans_forever, OrphanFiles(open_snapshot_store(config), store, config.files.orphan_grace),
                 gevent.sleep)
    # What start-up built lives as long as the process: the collector no longer walks it. A full collection
    # walked ~105,000 such objects in ~80-100 ms, holding the GIL: every request and relayed CDP message
    # waited (1 of 60 warm creates took 125 ms; with this none over 50).
    gc.freeze()
    serve(config, store, app, relays)


if __name__ == "__main__":
    main()
