"""In-memory `memory` (stream) and `memory_queue` sources, for tests and the demo."""
