-- bulkhead pgstore schema, version 8: every write function reads by key,
-- whatever the tables' statistics.
--
-- The write functions keep a statement's plan once five calls have shown
-- that one plan for all values is as cheap as a plan per call. A table
-- that autovacuum (or an operator's VACUUM) visited while it was empty
-- or small is priced as small, and a plan made then reads it whole: a
-- node's completion then costs more with every node journaled since,
-- until the next analyze replans it (bench/dbos, one run in flight after
-- a VACUUM of the new database: 486 us a completion on the server
-- instead of 320, and growing, each check of node_results a sequential
-- scan). Every statement of these functions finds its rows through a
-- primary key, so they now plan without sequential scans, as the group
-- call does since version 7.
ALTER FUNCTION bulkhead_complete_node(bytea, bytea, bytea, bytea[], int[], bigint[])
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_queue_nodes(bytea, bytea[], int[], int[], bytea[], bigint, bytea, bigint)
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_complete_task(bytea, bytea, bytea, bigint, bytea, bytea[], int[], int[], bytea[], bigint, boolean, bigint)
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_submit_run(bytea, text, bigint, bigint, bytea, bytea[], int[], int[], bytea[], bigint)
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_submit_run_claim(bytea, text, bigint, bigint, bytea, bytea[], int[], int[], bytea[], bigint, bytea, bigint)
	SET enable_seqscan = off;
ALTER FUNCTION bulkhead_enqueue_nodes(bytea, bytea[], int[], int[], bytea[], bigint)
	SET enable_seqscan = off;
