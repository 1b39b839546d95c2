-- bulkhead pgstore schema, version 6: a claim finds the due tasks directly.
--
-- A claim read the queued tasks in seq order (tasks_queued) and passed
-- over every task released with a delay that has not passed yet, so with
-- many sleeping runs (timers, waits for an event) each claim read them
-- all. tasks_due orders the queued tasks by when they become claimable: a
-- claim reads the due ones, oldest first, and stops at its limit.
CREATE INDEX tasks_due ON tasks (ready_at, seq) WHERE owner IS NULL;
