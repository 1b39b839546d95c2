-- bulkhead pgstore schema, version 10: a new run's roots are queued in one
-- statement.
--
-- A submit queued its run's roots through bulkhead_queue_nodes, a loop
-- that checks, for each node, that it is not journaled, not queued and
-- has its needs journaled, in a function call of its own. A run the
-- submit has just created has no results, tasks or attempts (they go
-- with their run), and roots have no needs, so none of those checks can
-- hold a root back: both submit functions now write the roots' attempts
-- and tasks in one statement each. With 16 ten-node runs in flight the
-- loop took about 0.15 ms of the server's time per submit (bench/dbos,
-- pg_stat_statements).
--
-- A root that lists needs is not queued, as before (bulkhead's hosts
-- never send one). Signatures and answers are unchanged. An attempt row
-- left under the new run's ID (a host of an earlier version recording an
-- attempt of a run being removed, once version 11 no longer refuses it
-- by foreign key) is overwritten: the run starts at attempt one.

CREATE OR REPLACE FUNCTION bulkhead_submit_run_claim(
	p_id bytea, p_status text, p_created bigint, p_finished bigint, p_body bytea,
	p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint,
	p_owner bytea, p_lease_us bigint,
	OUT created boolean, OUT k_node bytea, OUT k_token bigint, OUT k_first int, OUT k_lease timestamptz)
LANGUAGE plpgsql
SET plan_cache_mode = auto
SET enable_seqscan = off
AS $$
BEGIN
	INSERT INTO runs (id, status, created_ns, finished_ns, body)
		VALUES (p_id, p_status, p_created, p_finished, p_body)
		ON CONFLICT (id) DO NOTHING;
	created := FOUND;
	IF NOT created THEN
		RETURN;
	END IF;
	WITH r AS MATERIALIZED (
		SELECT p_nodes[i] AS node, p_blocks[i] AS block, i,
			p_owner IS NOT NULL AND row_number() OVER (ORDER BY i) = 1 AS keep
		FROM generate_subscripts(p_nodes, 1) AS i
		WHERE coalesce(p_nneeds[i], 0) = 0
	), att AS (
		INSERT INTO node_attempts AS a (run_id, node, attempt, started_ns)
		SELECT p_id, node, block, p_now FROM r ORDER BY node
		ON CONFLICT (run_id, node) DO UPDATE
			SET attempt = EXCLUDED.attempt, started_ns = EXCLUDED.started_ns
	), ins AS (
		INSERT INTO tasks (run_id, node, first_attempt, owner, token, claims, lease_until)
		SELECT p_id, node, 1,
			CASE WHEN keep THEN p_owner END,
			CASE WHEN keep THEN nextval('task_tokens') ELSE 0 END,
			CASE WHEN keep THEN 1 ELSE 0 END,
			CASE WHEN keep THEN now() + p_lease_us * interval '1 microsecond' END
		FROM r ORDER BY i
		RETURNING node, token, lease_until, owner
	)
	SELECT ins.node, ins.token, 1, ins.lease_until INTO k_node, k_token, k_first, k_lease
	FROM ins WHERE ins.owner IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION bulkhead_submit_run(
	p_id bytea, p_status text, p_created bigint, p_finished bigint, p_body bytea,
	p_nodes bytea[], p_blocks int[], p_nneeds int[], p_needs bytea[], p_now bigint)
RETURNS boolean
LANGUAGE plpgsql
SET plan_cache_mode = auto
SET enable_seqscan = off
AS $$
BEGIN
	RETURN (SELECT created FROM bulkhead_submit_run_claim(p_id, p_status, p_created, p_finished, p_body,
		p_nodes, p_blocks, p_nneeds, p_needs, p_now, NULL, 0));
END
$$;
