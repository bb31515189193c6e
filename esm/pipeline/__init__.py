"""The record path of one mapping: the `reader` thread (poll, filter, batch, dispatch,
settle), the `lane_buffer` and `batching` between poll and dispatch, `dispatch` that runs
each batch on a lane thread or the reader's own (where: esm.threads.placement),
`settling` that applies what comes back, `lane_worker` and `invoker` that call the
target, and `acks` / `positions` that decide what is owed to the source. Imports esm's
leaves, filtering, failures and ops; never a connector.
"""
