"""asyncio multi-group runtime: drives many Raft groups in one process."""
