"""Tumbling windows (`tumbling_window_in_seconds`, ESM-SPEC §2.5): the `book` of each lane's
open window and its state (which window a record belongs to, when a window ends, the
documents that carry it across a restart), and the `invoker` that adds the window to each
event and reads the state back. Imports esm's leaves and the pipeline's invoker."""
