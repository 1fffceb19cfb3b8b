"""`xmodal migrate`: move a space to a new model while search keeps answering from the old one.

The collection name the deployment uses (``Asset``) is a Weaviate alias over a physical collection
(``Asset_v1``; XMODAL_WEAVIATE__BEHIND_ALIAS=true creates it so). A migration:

1. ``plan``: what would happen (space, old and new model, objects, events to replay, an estimate), and whether
   it can: the name must be an alias and the topic must still hold every event (log start 0 on each partition,
   or a compacted topic).
2. ``start``: records the migration (services.store.migrations, in Weaviate, so it survives any crash) and runs
   a second consumer group over the same topic from its first offset with the new model, writing
   ``Asset_v2``. That is both the backfill and the dual write: the group replays every event ever published
   and then follows the live ones, through the same ingest pipeline as the live workers (newest event wins,
   deletes stick, a bad event is dead-lettered), while the live workers go on writing ``Asset_v1`` with the
   old model. Its committed offsets are the resumable cursor: offsets are committed only after the write, so
   after a kill -9 ``resume`` goes on from the last stored event and nothing is missing.
3. ``status``: done/total (events the group is past, of all in the topic), rate, ETA, both sides' counts.
4. ``cutover``: takes the topic's end offsets now as the watermark, waits until the new side's group has
   committed them, then moves the alias (one atomic switch). ``rollback`` is the same towards the old side,
   waiting for the live group. The gateway follows the alias (services.gateway.live).
5. ``finish``: the new side is the deployment's collection; the live group's offsets are set to the
   migration group's, so workers restarted with the new model go on where it is.
"""
